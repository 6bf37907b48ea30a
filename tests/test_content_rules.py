"""The content rules' speed rewrites keep their meaning: patterns matched on lowercased text
agree with the same pattern under (?i), the prompt prefilter never hides a prompt, and the
telnet analyzer skipping empty server lines decides as it did without the shortcut."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feature_extractor import content

LOWERCASED = ["FAILED_LOGIN", "HTTP_SCRIPT", "HTTP_SYSTEM", "HTTP_INJECTION"]
PIECES = [b"Login Incorrect", b"ACCESS denied", b"/CGI-BIN/", b".Exe", b"PHF", b"/ETC/",
          b"%2E%2e", b"UNION SELECT", b"<SCRIPT", b"${JNDI:", b"; CAT ", b"' Or '1", b"\xc3\x89",
          b"/", b".", b" ", b"\t", b"x", b"9"]
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=6)), max_size=12).map(b"".join)


@pytest.mark.parametrize("name", LOWERCASED)
@settings(max_examples=400, deadline=None)
@given(text=texts)
def test_lowercased_rules_agree_with_ignorecase(name, text):
    pattern = getattr(content, name)
    assert pattern.pattern == pattern.pattern.lower()
    reference = re.compile(b"(?i)" + pattern.pattern)
    assert bool(pattern.search(text.lower())) == bool(reference.search(text))


@settings(max_examples=400, deadline=None)
@given(text=st.lists(st.sampled_from([b"$", b"%", b">", b"#", b"]", b" ", b"a", b"_", b":", b"\t"]),
                     max_size=8).map(b"".join))
def test_shell_prompt_prefilter_is_only_a_shortcut(text):
    if content.SHELL_PROMPT.search(text):
        assert text.endswith(content.PROMPT_ENDS)
    if content.LOGIN_PROMPT.search(text) or content.PASSWORD_PROMPT.search(text):
        assert b":" in text


def test_a_hundred_slashes_is_the_slash_rule():
    analyzer = content.HttpAnalyzer()
    analyzer.data(True, b"GET /" + b"/" * 99 + b"x HTTP/1.0\r\n")
    assert analyzer.result().hot == 2 and analyzer.result().num_compromised == 1
    other = content.HttpAnalyzer()
    other.data(True, b"GET /" + b"/" * 98 + b"x HTTP/1.0\r\n")
    assert other.result().hot == 0


class _EveryServerLine(content.InteractiveAnalyzer):
    """The telnet analyzer as it was: every server line, empty ones too, through line()."""

    def lines(self, from_orig: bool, buf: bytes) -> bytes:
        parts = buf.replace(b"\r", b"\n").split(b"\n")
        rest = parts.pop()
        for line in parts:
            self.line(from_orig, line, complete=True)
        return rest


TELNET = [b"login: ", b"Password:", b"$ ", b"# ", b"\r\n", b"\r", b"\n", b"\r\x00", b"root",
          b"guest", b"Login incorrect", b"Last login: x", b"Welcome", b"su", b"ls", b"cat ",
          b"/etc/passwd", b"\xff\xfb\x01", b"\x08", b" "]


@pytest.mark.parametrize("refusal", [
    b"Login incorrect",                                       # util-linux and busybox login
    b"% Login invalid", b"% Authentication failed",           # Cisco IOS, local and AAA
    b"Logon failure: unknown user name or bad password.",     # Windows
    b"Access denied",
])
def test_telnet_servers_refusals_are_failed_logins(refusal):
    a = content.InteractiveAnalyzer()
    for from_orig, text in ((False, b"\xff\xfd\x18Username: "), (True, b"alice\r\n"),
                            (False, b"Password: "), (True, b"guess\r\n"),
                            (False, b"\r\n" + refusal + b"\r\n\r\nUsername: ")):
        a.data(from_orig, text)
    f = a.result()
    assert (f.num_failed_logins, f.logged_in) == (1, 0)


@settings(max_examples=1000, deadline=None)
@given(segments=st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from(TELNET), min_size=1,
                                                          max_size=6).map(b"".join)),
                         max_size=20))
def test_skipping_empty_telnet_server_lines_changes_nothing(segments):
    fast, reference = content.InteractiveAnalyzer(), _EveryServerLine()
    for from_orig, payload in segments:
        fast.data(from_orig, payload)
        reference.data(from_orig, payload)
    assert fast.result() == reference.result()


@pytest.mark.parametrize("command, endpoint", [
    (b"PORT 10,200,0,1,128,7", (bytes([10, 200, 0, 1]), 32775)),
    (b"port 10,200,0,1,128,7", (bytes([10, 200, 0, 1]), 32775)),
    (b"EPRT |1|10.200.0.1|32775|", (bytes([10, 200, 0, 1]), 32775)),
    (b"EPRT |2|::1|5282|", (bytes(15) + b"\x01", 5282)),
    (b"PORT 10,200,0,1,300,7", None), (b"PORT 10,200,0,1", None), (b"EPRT |3|x|1|", None),
    (b"EPRT |1|10.200.0.1|0|", None), (b"EPRT", None),
])
def test_active_mode_commands_announce_the_clients_endpoint(command, endpoint):
    ftp = content.FtpAnalyzer()
    ftp.line(True, command, complete=True)
    assert ftp.expected == ([] if endpoint is None else [(*endpoint, False)])


@pytest.mark.parametrize("line", [
    b"USER root", b"STOR x", b"stou", b"APPE y", b"MKD d", b"XMKD d", b"SITE CHMOD 777 f",
    b"RETR /etc/passwd", b"CWD /bin", b"RETR .rhosts", b"PORT 10,200,0,1,128,7", b"RETR notes",
    b"LIST", b"nlst", b"MLSD pub",
    b"EPRT |1|10.200.0.1|32775|"])
def test_every_ftp_command_the_analyzer_acts_on_holds_a_needle(line):
    """The kernel hands the FTP analyzer only client lines holding a needle."""
    ftp, reference = content.FtpAnalyzer(), content.FtpAnalyzer()
    ftp.line(True, line, complete=True)
    for a in (ftp, reference):
        a.line(False, b"230 Login successful.", complete=True)
    assert (ftp.result(), ftp.expected) != (reference.result(), reference.expected)
    assert any(n in line.lower() for n in content.FTP_NEEDLES)
