"""`sbops exporter`: the doctor's checks as Prometheus metrics.

    flights.py    concurrent scrapes share one execution of a check; costly checks' results are reused
    collect.py    one scrape: run a layer's checks against a deadline, keep what the metrics need
    metrics.py    pure: check outcomes -> metric families (names, types, HELP, bounded labels)
    webconfig.py  the exporter-toolkit web-config file: TLS settings and bcrypt basic-auth users
    server.py     the HTTP server: /metrics, /probe?module=<layer>, /-/healthy, /
"""
