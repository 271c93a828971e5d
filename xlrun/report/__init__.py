"""Reports over the results database: loading (:mod:`.query`), statistics (:mod:`.stats`),
rendering (:mod:`.render`), plots (:mod:`.plots`), read-only SQL (:mod:`.readonly`) and the
whole report (:mod:`.build`)."""
