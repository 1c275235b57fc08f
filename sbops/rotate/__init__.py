"""`sbops rotate-credentials`: change a service's password everywhere it lives (the server, the Helm release's
values and so the Secret the pods read, the running pods, the credentials file), in an order that can be
undone at every step. `plan` is pure and table-tested; `flow` does the I/O and journals each step."""
