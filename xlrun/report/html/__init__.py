"""``xlrun report --html``: one self-contained HTML page of a study (:func:`write_page`),
its data built with the report code (:mod:`.data`, :mod:`.overview`), its charts from
plotly (:mod:`.figures`) and its layout (:mod:`.page`)."""

from xlrun.report.html.page import write_page

__all__ = ["write_page"]
