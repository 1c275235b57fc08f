"""sbops's MySQL logins keep PyMySQL's PREFERRED TLS mode (encrypt when the server offers TLS, no certificate
check since no CA is configured) but with one TLS context for the process: PyMySQL builds a new one per
connection with ssl.create_default_context(), loading the system CA store to no use (issue 16: most of an
exporter scrape's CPU). These pin the PyMySQL internals the shortcut relies on, so an upgrade that moves them
fails here rather than silently dropping TLS."""

from __future__ import annotations

import ssl

import pymysql.connections

from sbops.probes.mysql import session


def built() -> pymysql.connections.Connection:
    conn = pymysql.connections.Connection(defer_connect=True, ssl_disabled=True, host="127.0.0.1", port=1)
    session.prefer_tls(conn)
    return conn


def test_preferred_mode_with_one_shared_context():
    first, second = built(), built()
    assert first.ssl is True and first._ssl_required is False
    assert first.ctx is second.ctx is session.preferred_tls_context()
    assert first.ctx.verify_mode == ssl.CERT_NONE and not first.ctx.check_hostname


def test_pymysql_default_is_still_preferred_mode():
    """What prefer_tls imitates: PyMySQL's own default when no TLS option is given."""
    conn = pymysql.connections.Connection(defer_connect=True, host="127.0.0.1", port=1)
    assert conn.ssl is True and conn._ssl_required is False and conn.ctx.verify_mode == ssl.CERT_NONE
