"""Writes the small synthetic captures under pcaps/synthetic/ (scapy).

Each capture exercises one rule of the extractor; tests/test_extractor_synthetic.py states the
expected features, with the reason for each number. Run: python pcaps/generate.py
Addresses are documentation ranges; timestamps start at T0 and are exact to the microsecond.
"""

from __future__ import annotations

from pathlib import Path

from scapy.all import ICMP, IP, TCP, UDP, Ether, Raw, fragment, wrpcap  # noqa: F401

OUT = Path(__file__).resolve().parent / "synthetic"
T0 = 1_700_000_000.0
CLIENT, SERVER, OTHER, CLIENT2 = "192.0.2.10", "192.0.2.20", "192.0.2.30", "192.0.2.40"
MAC_C, MAC_S = "02:00:00:00:00:01", "02:00:00:00:00:02"


def _frame(src: str, dst: str, l4, t: float):
    p = Ether(src=MAC_C, dst=MAC_S) / IP(src=src, dst=dst) / l4
    p.time = T0 + t
    return p


class Session:
    """A scripted TCP conversation with consistent sequence numbers."""

    def __init__(self, client: str, cport: int, server: str, sport: int, t: float,
                 isn_c: int = 1000, isn_s: int = 5000):
        self.c, self.cp, self.s, self.sp = client, cport, server, sport
        self.t = t
        self.seq = {True: isn_c, False: isn_s}
        self.packets: list = []

    def _send(self, from_client: bool, flags: str, data: bytes = b"", dt: float = 0.01,
              seq_override: int | None = None) -> None:
        self.t += dt
        src, dst = (self.c, self.s) if from_client else (self.s, self.c)
        sport, dport = (self.cp, self.sp) if from_client else (self.sp, self.cp)
        seq = self.seq[from_client] if seq_override is None else seq_override
        ack = self.seq[not from_client] if "A" in flags else 0
        l4 = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=65535)
        if data:
            l4 = l4 / Raw(data)
        self.packets.append(_frame(src, dst, l4, self.t))
        if seq_override is None:
            self.seq[from_client] += len(data) + (1 if ("S" in flags or "F" in flags) else 0)

    def syn(self, dt=0.0):
        self._send(True, "S", dt=dt)

    def synack(self, dt=0.01):
        self._send(False, "SA", dt=dt)

    def handshake(self, dt=0.0):
        self.syn(dt)
        self.synack()
        self._send(True, "A")

    def client(self, data: bytes, dt=0.01, flags="PA"):
        self._send(True, flags, data, dt)

    def server(self, data: bytes, dt=0.01):
        self._send(False, "PA", data, dt)

    def fin_both(self):
        self._send(True, "FA")
        self._send(False, "FA")
        self._send(True, "A")

    def fin_client(self):
        self._send(True, "FA")

    def fin_server(self):
        self._send(False, "FA")

    def rst_client(self, ack=True):
        self._send(True, "RA" if ack else "R")

    def rst_server(self):
        self._send(False, "RA")

    def ack(self, from_client=True):
        self._send(from_client, "A")


# The 13 connection states: (flag, steps on a Session), destination ports 1001-1013, 5 s apart.
FLAG_SCENARIOS = [
    ("S0", ["syn"]),                                                   # SYN, nothing back
    ("REJ", ["syn", "rst_server"]),                                    # SYN answered by RST
    ("SF", ["handshake", ("client", b"hello"), ("server", b"world!"), "fin_both"]),
    ("S1", ["handshake", ("client", b"abc")]),                         # never closed
    ("S2", ["handshake", ("client", b"abc"), "fin_client"]),           # originator FIN only
    ("S3", ["handshake", ("server", b"abc"), "fin_server"]),           # responder FIN only
    ("RSTO", ["handshake", ("client", b"abc"), "rst_client"]),
    ("RSTR", ["handshake", ("client", b"abc"), "rst_server"]),
    ("RSTOS0", ["syn", ("rst_client", False)]),                        # SYN, then own RST
    ("RSTRH", [("synack", 0.0), "rst_server"]),                        # no SYN seen
    ("SH", ["syn", "fin_client"]),                                     # SYN, then own FIN
    ("SHR", [("synack", 0.0), "fin_server"]),                          # no SYN seen
    ("OTH", [("client", b"midstream", 0.0), ("server", b"reply"), ("client", b"more")]),
]


def flags_capture() -> list:
    pkts = []
    for i, (_, steps) in enumerate(FLAG_SCENARIOS, 1):
        s = Session(CLIENT, 40000 + i, SERVER, 1000 + i, t=5.0 * i)
        for step in steps:
            name, *args = step if isinstance(step, tuple) else (step,)
            getattr(s, name)(*args)
        pkts += s.packets
    return pkts


def bytes_capture() -> list:
    """Sequence-space byte counting: a retransmitted segment counts once."""
    s = Session(CLIENT, 41000, SERVER, 80, t=0.0)
    s.handshake()
    s.client(b"A" * 100)
    s._send(True, "PA", b"A" * 100, seq_override=s.seq[True] - 100)  # retransmission
    s.client(b"B" * 50)
    s.server(b"C" * 300)
    s.fin_both()
    return s.packets


def fragment_captures() -> dict[str, list]:
    """UDP datagram of 3000 payload bytes in fragments; overlapping (teardrop); oversize ping."""
    base = IP(src=CLIENT, dst=SERVER, id=0x1234) / UDP(sport=5000, dport=7000) / Raw(b"x" * 3000)
    frags = fragment(base, fragsize=1480)
    out: dict[str, list] = {}
    inorder = []
    for i, f in enumerate(frags):
        p = Ether(src=MAC_C, dst=MAC_S) / f
        p.time = T0 + 0.001 * i
        inorder.append(p)
    out["frag_inorder.pcap"] = inorder
    rev = []
    for i, f in enumerate(reversed(frags)):
        p = Ether(src=MAC_C, dst=MAC_S) / f
        p.time = T0 + 0.001 * i
        rev.append(p)
    out["frag_reversed.pcap"] = rev
    # teardrop: 36 bytes at offset 0 (MF), then 4 bytes at offset 24: the second lies inside.
    udp = UDP(sport=33, dport=200, len=36, chksum=0)
    first = IP(src=CLIENT, dst=SERVER, id=242, flags="MF", frag=0, proto=17) / udp / Raw(b"a" * 28)
    second = IP(src=CLIENT, dst=SERVER, id=242, flags=0, frag=3, proto=17) / Raw(b"b" * 4)
    out["frag_overlap.pcap"] = []
    for i, f in enumerate((first, second)):
        p = Ether(src=MAC_C, dst=MAC_S) / f
        p.time = T0 + 0.001 * i
        out["frag_overlap.pcap"].append(p)
    # ping of death: an echo request whose fragments reach past 65,535 bytes.
    pod = []
    payload = b"p" * 1480
    for i in range(46):
        off = i * 1480 // 8
        mf = "MF" if i < 45 else 0
        if i == 0:
            ip = IP(src=CLIENT, dst=SERVER, id=999, flags=mf, frag=0, proto=1) / ICMP(
                type=8, id=1, seq=1) / Raw(payload[:-8])
        else:
            ip = IP(src=CLIENT, dst=SERVER, id=999, flags=mf, frag=off, proto=1) / Raw(payload)
        p = Ether(src=MAC_C, dst=MAC_S) / ip
        p.time = T0 + 0.0001 * i
        pod.append(p)
    out["frag_oversize.pcap"] = pod
    return out


def land_capture() -> list:
    p = _frame(SERVER, SERVER, TCP(sport=79, dport=79, flags="S", seq=1), 0.0)
    return [p]


def urgent_capture() -> list:
    s = Session(CLIENT, 42000, SERVER, 23, t=0.0)
    s.handshake()
    s.client(b"!", flags="PAU")
    s.client(b"?", flags="PAU")
    s.fin_both()
    return s.packets


def echo(src: str, dst: str, t: float, seq: int = 1):
    return _frame(src, dst, ICMP(type=8, id=7, seq=seq) / Raw(b"0123456789abcdef0123"), t)


def windows_capture() -> list:
    """Connections spaced so that each 2-second and host-window rule changes a value."""
    pkts = [echo(CLIENT, SERVER, 0.0), echo(CLIENT, SERVER, 0.5), echo(CLIENT, OTHER, 1.0),
            echo(CLIENT, SERVER, 2.2), echo(CLIENT, SERVER, 2.6)]
    rej = Session(CLIENT2, 45000, SERVER, 80, t=3.0)
    rej.syn()
    rej.rst_server()
    pkts += rej.packets
    s0 = Session(CLIENT2, 45001, SERVER, 81, t=3.3)
    s0.syn()
    pkts += s0.packets
    pkts.append(echo(CLIENT, SERVER, 4.5))
    return sorted(pkts, key=lambda p: p.time)


def caps_capture() -> list:
    """600 echo requests to one host in 1.2 s: count caps at 511, host counts at 255."""
    return [echo(CLIENT, SERVER, 0.002 * i, seq=i) for i in range(600)]


def telnet_session(success: bool, port: int, t: float) -> list:
    s = Session(CLIENT, port, SERVER, 23, t=t)
    s.handshake()
    s.server(b"\xff\xfd\x18\xff\xfd\x20")  # IAC DO TTYPE, IAC DO TSPEED
    s.client(b"\xff\xfc\x18\xff\xfc\x20")
    s.server(b"Debian GNU/Linux 12\r\nlogin: ")
    for ch in b"alice\r":
        s.client(bytes([ch]))
    s.server(b"alice\r\nPassword: ")
    s.client(b"secret\r")
    if not success:
        s.server(b"\r\nLogin incorrect\r\nlogin: ", dt=2.0)
        s.fin_both()
        return s.packets
    s.server(b"\r\nLast login: Mon Nov 23 10:00:00 on pts/0\r\nalice@host:~$ ")
    for line in (b"touch notes.txt\r", b"cat /etc/passwd\r", b"cd /etc\r", b"su -\r"):
        s.client(line)
        s.server(line[:-1] + b"\r\nalice@host:~$ ")
    s.server(b"Password: ")
    s.client(b"rootpw\r")
    s.server(b"\r\nroot@host:~# ")
    s.client(b"/bin/sh\r")
    s.server(b"# ")
    s.client(b"exit\r")
    s.fin_both()
    return s.packets


def ftp_session(user: bytes, ok: bool, port: int, t: float, store: bool = False) -> list:
    s = Session(CLIENT, port, SERVER, 21, t=t)
    s.handshake()
    s.server(b"220 (vsFTPd 3.0.3)\r\n")
    s.client(b"USER " + user + b"\r\n")
    s.server(b"331 Please specify the password.\r\n")
    s.client(b"PASS guest@example.org\r\n")
    if ok:
        s.server(b"230 Login successful.\r\n")
        if store:
            s.client(b"STOR upload.bin\r\n")
            s.server(b"150 Ok to send data.\r\n")
            s.server(b"226 Transfer complete.\r\n")
    else:
        s.server(b"530 Login incorrect.\r\n", dt=1.0)
    s.client(b"QUIT\r\n")
    s.server(b"221 Goodbye.\r\n")
    s.fin_both()
    return s.packets


def dialog(port: int, t: float, service_port: int, lines: list[tuple[str, bytes]]) -> list:
    """A whole session: handshake, the (side, bytes) exchanges in order, FINs both ways."""
    s = Session(CLIENT, port, SERVER, service_port, t=t)
    s.handshake()
    for side, data in lines:
        getattr(s, side)(data)
    s.fin_both()
    return s.packets


def pop3_session(ok: bool, port: int, t: float) -> list:
    return dialog(port, t, 110, [
        ("server", b"+OK POP3 ready\r\n"), ("client", b"USER bob\r\n"), ("server", b"+OK\r\n"),
        ("client", b"PASS hunter2\r\n"),
        ("server", b"+OK Logged in.\r\n" if ok else b"-ERR [AUTH] Authentication failed.\r\n"),
        ("client", b"QUIT\r\n"), ("server", b"+OK Bye\r\n")])


def smtp_session(port: int, t: float) -> list:
    return dialog(port, t, 25, [
        ("server", b"220 mail.example.org ESMTP\r\n"), ("client", b"HELO client.example.org\r\n"),
        ("server", b"250 mail.example.org\r\n"), ("client", b"MAIL FROM:<a@example.org>\r\n"),
        ("server", b"250 2.1.0 Ok\r\n"), ("client", b"QUIT\r\n"), ("server", b"221 2.0.0 Bye\r\n")])


def http_session(path: bytes, port: int, t: float) -> list:
    return dialog(port, t, 80, [
        ("client", b"GET " + path + b" HTTP/1.0\r\nHost: www.example.org\r\nUser-Agent: test\r\n\r\n"),
        ("server", b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello")])


def refused_logins() -> list:
    """Logins refused by HTTP, SMTP and IMAP, an IMAP login, an SSH banner exchange, a POP3
    greeting the client resets, FTP guesses and downloads, a zone transfer over TCP: what
    NSL-KDD counts as failed or logged in there."""
    pkts = dialog(43011, 200.0, 80, [
        ("client", b"GET /private/ HTTP/1.1\r\nHost: www.example.org\r\n"
                   b"Authorization: Basic Ym9iOnNlY3JldA==\r\n\r\n"),
        ("server", b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")])
    pkts += dialog(43012, 220.0, 25, [
        ("server", b"220 mail.example.org ESMTP\r\n"), ("client", b"AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"),
        ("server", b"535 5.7.8 Authentication credentials invalid\r\n"), ("client", b"QUIT\r\n"),
        ("server", b"221 2.0.0 Bye\r\n")])
    for port, t, answer in ((43013, 240.0, b"a1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"),
                            (43014, 260.0, b"a1 OK Logged in\r\n")):
        pkts += dialog(port, t, 143, [
            ("server", b"* OK IMAP4rev1 ready\r\n"), ("client", b"a1 LOGIN bob hunter2\r\n"),
            ("server", answer), ("client", b"a2 LOGOUT\r\n"), ("server", b"* BYE\r\n")])
    pkts += dialog(43015, 280.0, 22, [
        ("server", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"), ("client", b"SSH-2.0-OpenSSH_9.2p1\r\n")])
    s = Session(CLIENT, 43016, SERVER, 110, t=300.0)
    s.handshake()
    s.server(b"+OK POP3 ready\r\n")
    s.rst_client()
    pkts += s.packets + ftp_session(b"guest", False, 43017, 320.0) + anonymous_downloads()
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03org\x00\x00\xfc\x00\x01"
    answer = query[:2] + b"\x84\x00\x00\x01\x00\x00\x00\x00\x00\x00" + query[12:]
    return pkts + dialog(43019, 360.0, 53, [("client", len(query).to_bytes(2, "big") + query),
                                            ("server", len(answer).to_bytes(2, "big") + answer)])


def anonymous_downloads() -> list:
    """An anonymous FTP session listing a directory and fetching two files (passive mode)."""
    lines = [("server", b"220 (vsFTPd 3.0.3)\r\n"), ("client", b"USER anonymous\r\n"),
             ("server", b"331 Please specify the password.\r\n"), ("client", b"PASS guest@\r\n"),
             ("server", b"230 Login successful.\r\n"), ("client", b"CWD /pub\r\n"),
             ("server", b"250 Directory successfully changed.\r\n")]
    for n, command in enumerate((b"LIST", b"RETR README", b"retr release.tar.gz")):
        lines += [("client", b"PASV\r\n"),
                  ("server", b"227 Entering Passive Mode (192,0,2,20,117,%d).\r\n" % (48 + n)),
                  ("client", command + b"\r\n"), ("server", b"150 Here comes the data.\r\n"),
                  ("server", b"226 Transfer complete.\r\n")]
    return dialog(43018, 340.0, 21, lines + [("client", b"QUIT\r\n"), ("server", b"221 Goodbye.\r\n")])


def content_capture() -> list:
    """Cleartext sessions, 20 s apart, client ports 43001-43019 in this order."""
    pkts = []
    pkts += telnet_session(True, 43001, 0.0)
    pkts += telnet_session(False, 43002, 20.0)
    pkts += ftp_session(b"anonymous", True, 43003, 40.0)
    pkts += ftp_session(b"alice", False, 43004, 60.0)
    pkts += ftp_session(b"alice", True, 43005, 80.0, store=True)
    pkts += pop3_session(True, 43006, 100.0)
    pkts += pop3_session(False, 43007, 120.0)
    pkts += smtp_session(43008, 140.0)
    pkts += http_session(b"/index.html", 43009, 160.0)
    pkts += http_session(b"/cgi-bin/phf?Qalias=x%0a/bin/cat%20/etc/passwd", 43010, 180.0)
    return pkts + refused_logins()


def main() -> None:
    OUT.mkdir(exist_ok=True)
    captures = {
        "flags.pcap": flags_capture(),
        "bytes.pcap": bytes_capture(),
        "land.pcap": land_capture(),
        "urgent.pcap": urgent_capture(),
        "windows.pcap": windows_capture(),
        "caps.pcap": caps_capture(),
        "content.pcap": content_capture(),
        **fragment_captures(),
    }
    for name, pkts in captures.items():
        wrpcap(str(OUT / name), pkts)
        print(f"{name}: {len(pkts)} packets")


if __name__ == "__main__":
    main()
