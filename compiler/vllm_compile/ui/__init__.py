"""The local web page (`vllm-compile ui`, the `[web]` extra): routes and templates over the API.

No planning logic here: every figure comes from `vllm_compile.api` (plans, what-ifs, rendered
REPORT.md and charts). Binds 127.0.0.1 unless told otherwise; needs no network at view time (the
page's own small script and stylesheet are served from the package).
"""
