"""`sbops upgrade`: doctor pre-flight, backup, `helm upgrade --reuse-values`, wait for Ready, doctor again, and on
failure `helm rollback` to the revision before. `plan` is pure and table-tested; `flow` does the I/O."""
