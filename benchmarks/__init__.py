"""d2l-rag benchmarks: D2L against in-context, RAG, standard context distillation and no document, in one run.

`python -m benchmarks.run --profile tiny|cpu|gpu` writes results.json, REPORT.md and PNG plots to
benchmarks/results/<profile>/; `python -m benchmarks.readme_table` renders the README's headline table from them.
"""
