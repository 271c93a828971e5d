"""Reports over the results database: the frames they read (:mod:`.frames`), cells
(:mod:`.cells`), the inferential model (:mod:`.inference`) and the tests built on it
(:mod:`.statistics`), ``--compare`` (:mod:`.compare`), ``--regress`` (:mod:`.regression`,
its variance strata in :mod:`.strata`), ``--bias`` (:mod:`.bias`), ``--exposure``
(:mod:`.exposure`), ``--curves`` (:mod:`.curves`), rendering (:mod:`.render`), plots
(:mod:`.plots`), read-only SQL (:mod:`.readonly`), the whole report (:mod:`.build`) and the
``--html`` page (:mod:`.html`).
"""
