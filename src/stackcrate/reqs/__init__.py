"""Requirements tools: inventory report, global-requirements check and sync, series diff."""
