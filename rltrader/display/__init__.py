"""What a person sees, in one layer: formatters (:mod:`.formatting`), the metric rows every view
shares (:mod:`.rows`), the per-iteration line (:mod:`.lines`), markdown (:mod:`.markdown`:
``report.md`` and the Prefect summary) and tables (:mod:`.tables`: the terminal and the
Prefect table artifact). Renderers take records and numbers; they compute nothing.
"""
