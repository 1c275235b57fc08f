"""A STAND-IN for the CloudStack management server's API (no CloudStack can be pulled here).

It is not CloudStack. It implements, independently of the `cs` client library sbops uses, what sbops relies on:

- CloudStack's documented request signing (API Developer's Guide, "Signing API Requests"): the parameters
  except `signature`, sorted by name, each `name=value` with the value URL-encoded as java.net.URLEncoder does
  (spaces as %20), joined with `&`, the whole string lower-cased, HMAC-SHA1 with the user's secret key,
  base64. With `signatureVersion=3` the request carries `expires` (ISO 8601), and a request whose `expires`
  lies before the server's clock is refused.
- Every authentication failure (unknown API key, wrong signature, disabled user or account, expired
  request) is answered as CloudStack answers it: HTTP 401, `{"<command>response": {"errorcode": 401,
  "errortext": "unable to verify user credentials and/or request signature"}}`. The server does not say
  which; sbops must find out by itself.
- Session logins (`command=login` by POST, a JSESSIONID cookie and the `sessionkey` parameter on later
  requests), as the UI and the installer's admin calls use.
- The commands: listCapabilities, listZones, login, logout, createAccount, createUser, listUsers, getUser,
  registerUserKeys, getUserKeys, enableUser, disableUser. Admin-only commands need an admin account.
- Every answer carries a `Date` header from the server's clock.

Lab-only extensions (a real CloudStack has none): `POST /lab/clock?offset=SECONDS` moves the server's clock
(clock-skew tests), `GET /lab/requests` lists the commands received with whether a password was in the query
string (tests assert passwords travel in POST bodies).

Run in-process (`StandIn(...).start()`) or as a script (`python3 cloudstack_standin.py --port 5050`), which is
how the lab's Podman image runs it. Only the standard library, so it runs in a bare image with Python.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

UNAUTHORIZED_TEXT = "unable to verify user credentials and/or request signature"
ADMIN_COMMANDS = {"createAccount", "createUser", "listUsers", "getUser", "registerUserKeys", "getUserKeys",
                  "enableUser", "disableUser"}
UNRESERVED = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.*")


def java_urlencode(value: str) -> str:
    """java.net.URLEncoder.encode(value, "UTF-8") with `+` replaced by `%20`, as CloudStack signs."""
    out = []
    for byte in value.encode("utf-8"):
        out.append(chr(byte) if byte in UNRESERVED else f"%{byte:02X}")
    return "".join(out)


def signature_of(params: dict[str, str], secret_key: str) -> str:
    """CloudStack's request signature of `params` (without `signature`)."""
    text = "&".join(f"{name}={java_urlencode(params[name])}" for name in sorted(params))
    digest = hmac.new(secret_key.encode(), text.lower().encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class User:
    id: str
    username: str
    password: str
    account: str
    admin: bool
    state: str = "enabled"
    apikey: str = ""
    secretkey: str = ""
    email: str = ""
    firstname: str = ""
    lastname: str = ""

    def public(self) -> dict:
        return {"id": self.id, "username": self.username, "account": self.account, "state": self.state,
                "accounttype": 1 if self.admin else 0, "domain": "ROOT", "email": self.email,
                "firstname": self.firstname, "lastname": self.lastname,
                **({"apikey": self.apikey} if self.apikey else {})}


@dataclass
class Seen:
    command: str
    method: str
    password_in_query: bool


@dataclass
class State:
    users: dict[str, User] = field(default_factory=dict)
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)  # JSESSIONID -> (sessionkey, user id)
    offset: float = 0.0  # seconds added to the real clock
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.time() + self.offset

    def add_user(self, username: str, password: str, account: str = "admin", admin: bool = True) -> User:
        user = User(str(uuid.uuid4()), username, password, account, admin)
        self.users[user.id] = user
        return user

    def by_name(self, username: str) -> User | None:
        return next((u for u in self.users.values() if u.username == username), None)

    def by_key(self, apikey: str) -> User | None:
        return next((u for u in self.users.values() if apikey and u.apikey == apikey), None)

    def register_keys(self, user: User) -> User:
        user.apikey = secrets.token_urlsafe(64)
        user.secretkey = secrets.token_urlsafe(64)
        return user


class ApiError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


class Handler(BaseHTTPRequestHandler):
    server_version = "CloudStackStandIn/1.0"
    state: State  # set on the subclass the server uses

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        return

    def date_time_string(self, timestamp=None) -> str:
        return formatdate(self.state.now(), usegmt=True)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        body: dict[str, str] = {}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            body = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
        if parts.path == "/lab/clock":
            self.state.offset = float(query.get("offset") or body.get("offset") or 0)
            return self._send(200, {"offset": self.state.offset})
        if parts.path == "/lab/requests":
            return self._send(200, {"requests": [s.__dict__ for s in self.state.seen]})
        if parts.path.rstrip("/") not in ("/client/api", "/api"):
            return self._send(404, None, b"<html><body>HTTP 404 Not Found</body></html>", "text/html")
        params = {**query, **body}
        command = params.get("command", "")
        with self.state.lock:
            self.state.seen.append(Seen(command, method, "password" in {k.lower() for k in query}))
        key = f"{command.lower()}response"
        try:
            caller, cookie = self._authenticate(command, params)
            result = self._run(command, params, caller)
        except ApiError as exc:
            return self._send(exc.code, {key: {"uuidList": [], "errorcode": exc.code, "cserrorcode": 9999,
                                              "errortext": exc.text}})
        return self._send(200, {key: result}, cookie=cookie)

    # -- authentication ----------------------------------------------------------------------------------
    def _authenticate(self, command: str, params: dict[str, str]) -> tuple[User | None, str]:
        if command == "login":
            user = self.state.by_name(params.get("username", ""))
            if user is None or user.password != params.get("password") or user.state != "enabled":
                raise ApiError(401, "Failed to authenticate user " + params.get("username", "") +
                               "; please provide valid credentials")
            return user, ""
        if "sessionkey" in params:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
            session = cookie["JSESSIONID"].value if "JSESSIONID" in cookie else ""
            known = self.state.sessions.get(session)
            if known is None or known[0] != params["sessionkey"]:
                raise ApiError(401, UNAUTHORIZED_TEXT)
            return self.state.users[known[1]], ""
        if "apiKey" not in params and "apikey" not in {k.lower() for k in params}:
            raise ApiError(401, UNAUTHORIZED_TEXT)
        return self._verify_signed(params), ""

    def _verify_signed(self, params: dict[str, str]) -> User:
        given = params.get("signature", "")
        unsigned = {k: v for k, v in params.items() if k != "signature"}
        lowered = {k.lower(): v for k, v in unsigned.items()}
        apikey = lowered.get("apikey", "")
        if lowered.get("signatureversion") == "3":
            try:
                expires = datetime.strptime(lowered.get("expires", ""), "%Y-%m-%dT%H:%M:%S%z")
            except ValueError:
                raise ApiError(401, UNAUTHORIZED_TEXT) from None
            if expires.timestamp() < self.state.now():
                raise ApiError(401, UNAUTHORIZED_TEXT)  # CloudStack logs "Request expired"; says only this
        user = self.state.by_key(apikey)
        if user is None or user.state != "enabled":
            raise ApiError(401, UNAUTHORIZED_TEXT)
        if not hmac.compare_digest(signature_of(unsigned, user.secretkey), given):
            raise ApiError(401, UNAUTHORIZED_TEXT)
        return user

    # -- commands ----------------------------------------------------------------------------------------
    def _run(self, command: str, p: dict[str, str], caller: User | None) -> dict:
        st = self.state
        if command in ADMIN_COMMANDS and not (caller and caller.admin):
            raise ApiError(432, f"The given command '{command}' either does not exist, is not available for "
                                "user, or not available from ip address")
        if command == "login":
            session, key = secrets.token_hex(16), secrets.token_urlsafe(20)
            st.sessions[session] = (key, caller.id)
            self._cookie = f"JSESSIONID={session}; Path=/client; HttpOnly"
            return {"username": caller.username, "userid": caller.id, "sessionkey": key, "account": caller.account,
                    "type": "1" if caller.admin else "0", "timeout": "1800"}
        if command == "logout":
            return {"description": "success"}
        if command == "listCapabilities":
            return {"capability": {"cloudstackversion": "4.19.0.0-standin", "apilimitmax": 25}}
        if command == "listZones":
            return {"count": 1, "zone": [{"id": "00000000-0000-0000-0000-00000000000a", "name": "Sandbox-simulator",
                                          "allocationstate": "Enabled"}]}
        if command == "createAccount":
            if st.by_name(p.get("username", "")):
                raise ApiError(431, f"The user {p.get('username')} already exists in domain ROOT")
            user = st.add_user(p["username"], p["password"], p.get("account") or p["username"],
                               admin=p.get("accounttype") == "1" or p.get("roleid") == "1")
            return {"account": {"name": user.account, "user": [user.public()]}}
        if command == "createUser":
            if st.by_name(p.get("username", "")):
                raise ApiError(431, f"The user {p.get('username')} already exists in domain ROOT")
            admins = {u.account for u in st.users.values() if u.admin}
            user = st.add_user(p["username"], p["password"], p["account"], admin=p["account"] in admins)
            user.email, user.firstname, user.lastname = p.get("email", ""), p.get("firstname", ""), p.get("lastname", "")
            return {"user": user.public()}
        if command == "listUsers":
            found = [u.public() for u in st.users.values() if not p.get("username") or u.username == p["username"]]
            return {"count": len(found), "user": found} if found else {}
        if command == "getUser":
            user = st.by_key(p.get("userapikey", ""))
            if user is None:
                raise ApiError(431, "Unable to find user with the specified api key")
            return {"user": user.public()}
        user = st.users.get(p.get("id", ""))
        if command in ("registerUserKeys", "getUserKeys", "enableUser", "disableUser") and user is None:
            raise ApiError(431, "Unable to find user by id")
        if command == "registerUserKeys":
            st.register_keys(user)
            return {"userkeys": {"apikey": user.apikey, "secretkey": user.secretkey}}
        if command == "getUserKeys":
            return {"userkeys": {"apikey": user.apikey, "secretkey": user.secretkey}} if user.apikey else {}
        if command in ("enableUser", "disableUser"):
            user.state = "enabled" if command == "enableUser" else "disabled"
            return {"user": user.public()}
        raise ApiError(432, f"The given command '{command}' does not exist or it is not available for user")

    def _send(self, code: int, doc: dict | None, raw: bytes = b"", ctype: str = "application/json;charset=utf-8",
              cookie: str = "") -> None:
        data = raw if doc is None else json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        set_cookie = getattr(self, "_cookie", "")
        if set_cookie:
            self.send_header("Set-Cookie", set_cookie)
            self._cookie = ""
        self.end_headers()
        self.wfile.write(data)


class StandIn:
    """The stand-in server on host:port, in a thread. `state` is its data (tests seed users through it)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, admin_password: str = "password") -> None:
        self.state = State()
        self.admin = self.state.add_user("admin", admin_password, "admin", admin=True)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The UI's URL, as the credentials file records it (the API is at <url>/api)."""
        return f"http://127.0.0.1:{self.port}/client"

    def start(self) -> "StandIn":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def user_with_keys(self, username: str = "sb-admin@portal.test", account: str = "admin") -> User:
        user = self.state.add_user(username, "user-pass-" + secrets.token_hex(4), account, admin=True)
        return self.state.register_keys(user)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=5050)
    args = parser.parse_args()
    # PID 1 in a container has no default signal handlers: without this, `podman stop` waits 10 s and kills
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = StandIn(args.host, args.port)
    server.httpd.serve_forever()


if __name__ == "__main__":
    main()
