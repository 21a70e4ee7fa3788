"""Small shared helpers.

Atomic file output, JSON and text reading (:mod:`~saropt.utils.io`), the output-folder rule
(:mod:`~saropt.utils.outdir`), checked weight transfer (:mod:`~saropt.utils.weights`), tables
and Markdown reports (:mod:`~saropt.utils.table`, :mod:`~saropt.utils.report`) and lazy package
exports (:mod:`~saropt.utils.lazy`).
"""
