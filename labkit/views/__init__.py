"""The notebook views: each function is one cell's call and returns something that displays
itself in Jupyter and in the exported report (a chart, a styled table, an HTML fragment, or a
:class:`~labkit.display.Verdict` banner).

Modules, by job:

- :mod:`labkit.views.elements` — Chart, callout, bullet list, the table look, the plot style
- :mod:`labkit.views.frames` — what the views read from runs (metrics frames, gate thresholds)
- :mod:`labkit.views.tables` — metrics, gate, thresholds, comparison, slice, dataset tables
- :mod:`labkit.views.charts` — metrics by stage, a metric by slice, dataset coverage
- :mod:`labkit.views.answers` — answers, flipped cases and their traces side by side
- :mod:`labkit.views.verdicts` — ship decision, gate banner, coverage gaps, simulated notice
- :mod:`labkit.views.footer` — the run-metadata footer
- :mod:`labkit.views.widgets` — the threshold tuner
- :mod:`labkit.views.traces` — trace store tables and charts, the observability verdict
- :mod:`labkit.views.readiness` — the scorecard's tables

Colours and number formats come from :mod:`labkit.display`. Nothing here is imported by
``import labkit.views``: notebooks import the modules they use.
"""
