"""Content features (NSL-KDD 10-22) from the cleartext payload of interactive and login sessions.

One analyzer per service family, each fed the in-order payload of one connection (bounded per
direction) through `data()` and asked for its features once at the end through `result()`.
Each rule is listed in docs/features.md with the evidence from the data behind it.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, fields

PAYLOAD_LIMIT = 16384  # bytes per direction handed to an analyzer

HOST_LOGINS = frozenset((b"root", b"admin", b"administrator", b"toor"))
GUEST_LOGINS = frozenset((b"anonymous", b"ftp", b"guest"))

# Command-stream indicators shared by telnet, rlogin, rsh and FTP.
_SYSTEM_DIR = rb"/(?:etc|bin|sbin|usr/bin|usr/sbin|dev|boot|lib|var/spool|root)\b"
SYSTEM_DIRS = re.compile(rb"(?:^|[\s/=\"'])" + _SYSTEM_DIR)
ENTER_SYSTEM_DIR = re.compile(rb"^\s*(?:cd|chdir|pushd)\s+" + _SYSTEM_DIR)
ACCESS_FILES = re.compile(rb"(?:/etc/(?:passwd|shadow|group|hosts\.equiv|sudoers)|\.rhosts|\.netrc|"
                          rb"\.ssh/|authorized_keys|\.forward|\.login|\.cshrc|\.profile|\.bashrc)")
PROGRAM_WORK = re.compile(rb"^\s*(?:gcc|cc|make|ld|as|chmod|chown|setuid|\./\S+)\b")
FILE_CREATION = re.compile(rb"(?:^\s*(?:touch|mkdir|cp|mv|tee|vi|vim|ed|emacs|pico|nano)\b|[^<>&0-9]>\s*\S)")
SHELL_START = re.compile(rb"^\s*(?:exec\s+)?(?:/bin/|/usr/bin/)?(?:sh|bash|csh|tcsh|ksh|zsh|dash)\b")
SU_COMMAND = re.compile(rb"^\s*(?:/bin/)?su\b")
# Case-insensitive rules marked "lowercased" are matched against bytes.lower() of the text: the
# same as (?i) on bytes (ASCII letters only), and 2-3 times faster in re.
FAILED_LOGIN = re.compile(rb"login incorrect|login failed|login invalid|logon failure|"
                          rb"authentication fail(?:ure|ed)|incorrect password|"
                          rb"permission denied, please try again|access denied")  # lowercased
SHELL_PROMPT = re.compile(rb"(?:[$%>#]|\w\]) ?$")
PROMPT_ENDS = tuple(end + space for end in (b"$", b"%", b">", b"#", b"]") for space in (b"", b" "))
LOGIN_PROMPT = re.compile(rb"(?i)(?:login|username|user name)\s*:\s*$")
PASSWORD_PROMPT = re.compile(rb"(?i)password\s*:\s*$")

# HTTP request indicators ("suspicious requests" of the task description), all lowercased.
HTTP_SCRIPT = re.compile(rb"/cgi-bin/|/scripts/|\.(?:cgi|pl|exe|dll|bat|sh)\b|phf")
HTTP_SYSTEM = re.compile(rb"/etc/|/bin/|passwd|cmd\.exe|\.\./|%2e%2e|/proc/self")
HTTP_INJECTION = re.compile(rb"union(?:\s|%20|\+|/\*\*/)+select|<script|%3cscript|'\s*or\s*'?\d|"
                            rb";\s*(?:cat|ls|id|wget|curl)\b|\$\{jndi:")
HTTP_SLASHES = b"/" * 100
# Every HTTP rule above needs one of these in the (lowercased) request line: a line without
# them is not handed to Python at all (tests/test_kernel.py checks the promise).
HTTP_NEEDLES = (b"//", b"bin/", b"/scripts/", b".cgi", b".pl", b".exe", b".dll", b".bat",
                b".sh", b"phf", b"/etc/", b"passwd", b"../", b"%2e%2e", b"/proc/self", b"union",
                b"<script", b"%3cscript", b"'", b";", b"${jndi:")
HTTP_METHODS = frozenset((b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                          b"TRACE", b"CONNECT"))


@dataclass(slots=True)
class ContentFeatures:
    hot: int = 0
    num_failed_logins: int = 0
    logged_in: int = 0
    num_compromised: int = 0
    root_shell: int = 0
    su_attempted: int = 0
    num_root: int = 0
    num_file_creations: int = 0
    num_shells: int = 0
    num_access_files: int = 0
    num_outbound_cmds: int = 0
    is_host_login: int = 0
    is_guest_login: int = 0

    def values(self) -> tuple[int, ...]:
        return (self.hot, self.num_failed_logins, self.logged_in, self.num_compromised,
                self.root_shell, self.su_attempted, self.num_root, self.num_file_creations,
                self.num_shells, self.num_access_files, self.num_outbound_cmds,
                self.is_host_login, self.is_guest_login)


NO_CONTENT = ContentFeatures().values()
CONTENT_FIELDS = tuple(f.name for f in fields(ContentFeatures))
SET, ADD = 1, 2  # what a counted line does to its feature: set it to 1, or add 1


def counted(*rules: tuple[bytes, str, int]) -> tuple[tuple[bytes, int, int], ...]:
    """(prefix, feature name, SET or ADD) rules, with the feature as its index in the values."""
    return tuple((prefix, CONTENT_FIELDS.index(name), op) for prefix, name, op in rules)


class Analyzer:
    """Line-oriented base: splits each direction into lines and hands them to subclasses.

    A subclass whose line() acts only on lines that start with known prefixes declares them as
    `line_prefixes = (client, server)` (per direction a tuple of prefixes, or None for every
    line); the extractor then splits the lines itself and calls line() for those alone.
    Two more declarations, per direction (client, server), spare Python calls in that mode:
    `line_counts`, rules `counted(...)` that set or add to a feature on every line starting with
    a prefix (applied here and by the kernel alike, never by line()), and `line_needles`, of
    which a line must hold one (ASCII case ignored) for line() to see it (None: no such test).
    """

    line_prefixes: tuple | None = None
    line_counts: tuple = ((), ())
    line_needles: tuple = (None, None)

    def __init__(self) -> None:
        self.f = ContentFeatures()
        self._pending = {True: b"", False: b""}
        self._seen = {True: 0, False: 0}

    def data(self, from_orig: bool, payload: bytes) -> bool:
        """Take the next in-order bytes of one direction; False once that direction is full."""
        room = PAYLOAD_LIMIT - self._seen[from_orig]
        if room <= 0 or not payload:
            return room > 0
        payload = self.clean(payload[:room])
        self._seen[from_orig] += len(payload)
        rest = self._pending[from_orig] = self.lines(from_orig, self._pending[from_orig] + payload)
        if rest:
            self.partial(from_orig, rest)
        return self._seen[from_orig] < PAYLOAD_LIMIT

    def lines(self, from_orig: bool, buf: bytes) -> bytes:
        """Hand each complete line of buf to line(); return the unterminated tail."""
        parts = buf.split(b"\n")
        rest = parts.pop()
        for line in parts:
            self.take_line(from_orig, line.rstrip(b"\r"), complete=True)
        return rest

    def take_line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        """One line, CRs stripped: the counted rules (as the kernel applies them), then line()."""
        for prefix, index, op in self.line_counts[0 if from_orig else 1]:
            if line.startswith(prefix):
                name = CONTENT_FIELDS[index]
                setattr(self.f, name, 1 if op == SET else getattr(self.f, name) + 1)
        self.line(from_orig, line, complete)

    def clean(self, payload: bytes) -> bytes:
        return payload

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        raise NotImplementedError

    def partial(self, from_orig: bool, text: bytes) -> None:
        """An unterminated tail (a prompt, usually); most protocols wait for the line end."""

    def result(self) -> ContentFeatures:
        for direction, rest in self._pending.items():
            if rest:
                self.take_line(direction, rest.rstrip(b"\r"), complete=False)
                self._pending[direction] = b""
        return self.f


def command_indicators(f: ContentFeatures, cmd: bytes, as_root: bool) -> None:
    """Indicators of one command line typed into an interactive session or FTP."""
    if not cmd.strip():
        return
    if SU_COMMAND.search(cmd):
        f.su_attempted = 1
    if SHELL_START.search(cmd):
        f.num_shells += 1
    if FILE_CREATION.search(cmd):
        f.num_file_creations += 1
    if ACCESS_FILES.search(cmd):
        f.num_access_files += 1
    # Entering a system directory is hot; reading a file in one is not: NSL-KDD's normal
    # telnet sessions that touch access files (`/etc/passwd`...) read hot 0 in 65 of 67 rows.
    if ENTER_SYSTEM_DIR.search(cmd) or PROGRAM_WORK.search(cmd):
        f.hot += 1
    if as_root:
        f.num_root += 1


class InteractiveAnalyzer(Analyzer):
    """telnet and rlogin: prompts and replies from the server, keystrokes from the client."""

    def __init__(self) -> None:
        super().__init__()
        self.expect = b""          # b"login" or b"password" after the matching prompt
        self.user = b""
        self.prompted = False      # a login or password prompt has been seen
        self.root_prompt = False
        self.seen_tail = b""       # an unterminated prompt already acted on

    def lines(self, from_orig: bool, buf: bytes) -> bytes:
        # A bare CR ends a line too. An empty server line changes nothing once seen_tail is
        # clear (a failed-login line leaves it set), so it costs no call: half the lines of a
        # CRLF stream.
        parts = buf.replace(b"\r", b"\n").split(b"\n")
        rest = parts.pop()
        if from_orig:
            for line in parts:
                self.client_line(_apply_backspaces(line))
        else:
            for line in parts:
                if line or self.seen_tail:
                    self.server_text(line)
        return rest

    def clean(self, payload: bytes) -> bytes:
        return strip_telnet(payload).replace(b"\x00", b"")

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        if from_orig:
            self.client_line(_apply_backspaces(line))
        else:
            self.server_text(line)

    def partial(self, from_orig: bool, text: bytes) -> None:
        if not from_orig and text != self.seen_tail:
            self.seen_tail = text
            self.server_prompt(text)

    def client_line(self, line: bytes) -> None:
        if self.expect == b"login":
            self.user = line.strip().lower()
            self.expect = b""
            return
        if self.expect == b"password":
            self.expect = b""
            return
        if self.f.logged_in:
            command_indicators(self.f, line, self.root_prompt)

    def server_text(self, line: bytes) -> None:
        if FAILED_LOGIN.search(line.lower()):
            self.f.num_failed_logins += 1
            self.f.logged_in = 0
            return
        if line.startswith(b"Last login") or (self.prompted and b"Welcome" in line):
            self._logged_in()
        tail, self.seen_tail = self.seen_tail, b""
        if not (tail and line.startswith(tail.rstrip(b"\r\n"))):
            self.server_prompt(line)

    def server_prompt(self, text: bytes) -> None:
        # Called on every echoed keystroke: each regex runs only where its literal can match.
        text = text.rstrip(b"\r\n")
        colon = b":" in text
        if colon and LOGIN_PROMPT.search(text):
            self.expect, self.prompted = b"login", True
        elif colon and PASSWORD_PROMPT.search(text):
            self.expect, self.prompted = b"password", True
        elif (self.prompted and len(text) < 80 and text.endswith(PROMPT_ENDS)
              and SHELL_PROMPT.search(text)):
            self._logged_in()
            is_root = text.rstrip().endswith(b"#")
            if is_root and not self.root_prompt:
                self.f.root_shell = 1
                if not self.f.su_attempted and self.user not in HOST_LOGINS:
                    self.f.num_compromised += 1
            self.root_prompt = is_root

    def _logged_in(self) -> None:
        if not self.f.logged_in:
            self.f.logged_in = 1
            if self.user in HOST_LOGINS:
                self.f.is_host_login = 1
            if self.user in GUEST_LOGINS:
                self.f.is_guest_login = 1


class RshAnalyzer(Analyzer):
    """rsh and rexec: NUL-separated user and command, then a status byte from the server."""

    def __init__(self) -> None:
        super().__init__()
        self.user = b""
        self.answered = False

    def data(self, from_orig: bool, payload: bytes) -> bool:
        if from_orig and not self.user and b"\x00" in payload:
            fields = [f for f in payload.split(b"\x00") if f]
            if len(fields) >= 2:
                self.user = fields[-3].lower() if len(fields) >= 3 else fields[0].lower()
                command_indicators(self.f, fields[-1], self.user in HOST_LOGINS)
            return True
        if not from_orig and not self.answered and payload:
            self.answered = True
            if payload[:1] == b"\x00":
                self.f.logged_in = 1
                self.f.is_host_login = int(self.user in HOST_LOGINS)
            else:
                self.f.num_failed_logins += 1
        return True

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        return None


# Every client-side FTP rule needs one of these (lowercased): the verbs it acts on, a path,
# or an access file's name.
FTP_NEEDLES = (b"user", b"stor", b"stou", b"appe", b"retr", b"list", b"nlst", b"mlsd", b"mkd",
               b"site", b"port", b"eprt", b"/",
               b".rhosts", b".netrc", b"authorized_keys", b".forward", b".login", b".cshrc",
               b".profile", b".bashrc")
PASV_REPLY = re.compile(rb"^227 .*?(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)")
EPSV_REPLY = re.compile(rb"^229 .*?\(\|\|\|(\d+)\|\)")


def _host_port(numbers: list[bytes]) -> tuple[bytes, int] | None:
    """FTP's `h1,h2,h3,h4,p1,p2` (PASV replies, PORT commands) as (IPv4 address, port)."""
    h = [int(x) for x in numbers]
    if len(h) == 6 and all(0 <= v < 256 for v in h):
        return bytes(h[:4]), h[4] * 256 + h[5]
    return None


def _port_argument(verb: bytes, arg: bytes) -> tuple[bytes, int] | None:
    """The client's data endpoint in `PORT h1,h2,h3,h4,p1,p2` or `EPRT |af|address|port|`."""
    try:
        if verb == b"PORT":
            return _host_port(arg.split(b","))
        if len(arg) > 1:
            family, address, port = arg[1:].split(arg[:1])[:3]
            af = {b"1": socket.AF_INET, b"2": socket.AF_INET6}[family]
            if 0 < int(port) < 65536:
                return socket.inet_pton(af, address.decode("ascii")), int(port)
    except (ValueError, KeyError, UnicodeDecodeError, OSError):
        pass
    return None


# FTP commands that are one `hot` each: SITE, and those that move a file or a listing over a
# data connection, as NSL-KDD's FTP rows count them (docs/features.md).
FTP_HOT_VERBS = frozenset((b"SITE", b"RETR", b"STOR", b"STOU", b"APPE", b"LIST", b"NLST", b"MLSD"))


class FtpAnalyzer(Analyzer):
    """Logins, transfers, file creations and access files; announces data endpoints (PASV and
    PORT). A guest account named by USER is a guest login whether or not the password works."""

    line_prefixes = (None, (b"227 ", b"229 ", b"230", b"530"))
    line_needles = (FTP_NEEDLES, None)

    def __init__(self) -> None:
        super().__init__()
        self.user = b""
        # (address or None for the server's, port, passive): where a data connection will go
        self.expected: list[tuple[bytes | None, int, bool]] = []

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        if from_orig:
            verb, _, arg = line.strip().partition(b" ")
            verb = verb.upper()
            if verb in FTP_HOT_VERBS:
                self.f.hot += 1
            if verb == b"USER":
                self.user = arg.strip().lower()
                self.f.is_guest_login = int(self.user in GUEST_LOGINS)
            elif verb in (b"STOR", b"STOU", b"APPE", b"MKD", b"XMKD"):
                self.f.num_file_creations += 1
            elif verb in (b"PORT", b"EPRT"):
                endpoint = _port_argument(verb, arg.strip())
                if endpoint is not None:
                    self.expected.append((*endpoint, False))
            if verb not in (b"USER", b"PASS") and (SYSTEM_DIRS.search(arg) or arg.startswith(b"/etc")):
                self.f.hot += 1
            if ACCESS_FILES.search(arg):
                self.f.num_access_files += 1
            return
        code = line[:4]
        m = PASV_REPLY.match(line) or EPSV_REPLY.match(line)
        if m:
            if len(m.groups()) == 6:
                endpoint = _host_port(m.groups())
                if endpoint is not None:
                    self.expected.append((*endpoint, True))
            elif int(m.group(1)) < 65536:
                self.expected.append((None, int(m.group(1)), True))
        if code.startswith(b"230"):
            if not self.f.logged_in:
                self.f.logged_in = 1
                self.f.is_host_login = int(self.user in HOST_LOGINS)
        elif code.startswith(b"530") and self.user:
            self.f.num_failed_logins += 1


class ServerAnsweredAnalyzer(Analyzer):
    """POP3, SSH and DNS over TCP: logged in once the server has sent anything (a greeting, a
    banner, an answer), as NSL-KDD reads them, failed password or not (docs/features.md)."""

    def data(self, from_orig: bool, payload: bytes) -> bool:
        if not from_orig and payload:
            self.f.logged_in = 1
        return False

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        return None


class ImapAnalyzer(Analyzer):
    """IMAP: a tagged OK to LOGIN/AUTHENTICATE. A refusal is not counted as a failed login:
    NSL-KDD counts those for telnet and FTP only."""

    def __init__(self) -> None:
        super().__init__()
        self.login_tag: bytes | None = None

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        if from_orig:
            words = line.split(None, 2)
            if len(words) >= 2 and words[1].upper() in (b"LOGIN", b"AUTHENTICATE"):
                self.login_tag = words[0]
            return
        if self.login_tag is None or not line.startswith(self.login_tag + b" "):
            return
        status = line[len(self.login_tag) + 1:].split(None, 1)[:1]
        if status == [b"OK"]:
            self.f.logged_in = 1
            self.login_tag = None
        elif status in ([b"NO"], [b"BAD"]):
            self.login_tag = None


class SmtpAnalyzer(Analyzer):
    """A session the server accepted (250 to HELO/EHLO/MAIL) is logged in."""

    line_prefixes = ((), ())
    line_counts = ((), counted((b"250", "logged_in", SET),))

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        return None


class HttpAnalyzer(Analyzer):
    """An answered request (a status line) is a logged-in session; suspicious requests are hot."""

    line_prefixes = (tuple(sorted(HTTP_METHODS)), ())
    line_counts = ((), counted((b"HTTP/", "logged_in", SET),))
    line_needles = (HTTP_NEEDLES, None)

    def line(self, from_orig: bool, line: bytes, complete: bool) -> None:
        if not from_orig or line[:8].split(b" ", 1)[0] not in HTTP_METHODS:
            return
        low = line.lower()
        if HTTP_SLASHES in line:
            self.f.hot += 2
            self.f.num_compromised += 1
        if HTTP_SCRIPT.search(low):
            self.f.hot += 1
        if HTTP_SYSTEM.search(low):
            self.f.hot += 1
            if ACCESS_FILES.search(line):
                self.f.num_access_files += 1
        if HTTP_INJECTION.search(low):
            self.f.hot += 1


TLS_RECORD_TYPES = frozenset((20, 21, 22, 23, 24))  # change cipher spec .. heartbeat
TLS_APPLICATION_DATA = 23


class TlsAnalyzer(Analyzer):
    """HTTPS: the request is encrypted, but a server answering it is still an answered request
    (logged_in, as for HTTP). Only the 5-byte TLS record headers are read.

    The answer is the server's first application-data record after the client's request: the
    client's first such record under TLS 1.2, its second under TLS 1.3 (the first is its
    Finished), which shows as the server sending application data before the client does.
    """

    def __init__(self) -> None:
        super().__init__()
        self._head = {True: b"", False: b""}  # an incomplete record header
        self._skip = {True: 0, False: 0}      # bytes of the current record body still to come
        self._client_records = 0              # client application-data records so far
        self._server_first = False            # the server sent application data first: TLS 1.3

    def data(self, from_orig: bool, payload: bytes) -> bool:
        skip = self._skip[from_orig]
        if skip >= len(payload):
            self._skip[from_orig] = skip - len(payload)
            return True
        buf = self._head[from_orig] + payload[skip:]
        self._skip[from_orig] = 0
        while len(buf) >= 5:
            if buf[0] not in TLS_RECORD_TYPES:
                return False  # not TLS: nothing to say
            if buf[0] == TLS_APPLICATION_DATA:
                if from_orig:
                    self._client_records += 1
                elif not self._client_records:
                    self._server_first = True
                elif self._client_records > self._server_first:
                    self.f.logged_in = 1
                    return False
            end = 5 + int.from_bytes(buf[3:5], "big")
            if end > len(buf):
                self._skip[from_orig] = end - len(buf)
                buf = b""
                break
            buf = buf[end:]
        self._head[from_orig] = buf
        return True


ANALYZERS: dict[str, type[Analyzer]] = {
    "telnet": InteractiveAnalyzer, "login": InteractiveAnalyzer,
    "shell": RshAnalyzer, "exec": RshAnalyzer,
    "ftp": FtpAnalyzer,
    "pop_3": ServerAnsweredAnalyzer, "pop_2": ServerAnsweredAnalyzer, "ssh": ServerAnsweredAnalyzer,
    "domain": ServerAnsweredAnalyzer, "imap4": ImapAnalyzer,
    "smtp": SmtpAnalyzer,
    "http": HttpAnalyzer, "http_8001": HttpAnalyzer, "http_2784": HttpAnalyzer,
    "http_443": TlsAnalyzer,
}


def strip_telnet(data: bytes) -> bytes:
    """Drop telnet option negotiation (IAC sequences); IAC IAC stands for one 0xff byte."""
    if b"\xff" not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b != 0xFF:
            out.append(b)
            i += 1
            continue
        cmd = data[i + 1] if i + 1 < n else None
        if cmd == 0xFF:
            out.append(0xFF)
            i += 2
        elif cmd == 0xFA:  # subnegotiation up to IAC SE
            end = data.find(b"\xff\xf0", i + 2)
            i = n if end < 0 else end + 2
        elif cmd is not None and 0xFB <= cmd <= 0xFE:
            i += 3
        else:
            i += 2
    return bytes(out)


def _apply_backspaces(line: bytes) -> bytes:
    if b"\x08" not in line and b"\x7f" not in line:
        return line
    out = bytearray()
    for b in line:
        if b in (0x08, 0x7F):
            if out:
                out.pop()
        else:
            out.append(b)
    return bytes(out)
