"""NSL-KDD service names from ports (TCP/UDP) and from ICMP type/code.

Unknown ports [choice, checked against the data in tests/test_services.py]: below 1024 they are
`private`, from 1024 up `other`. Evidence: nmap's 1998 default scan (ports 1-1024) left 468
private rows and no `other` in KDDTrain+; SNMP (udp/161) attacks are all `private`; normal TCP
traffic to unknown ports (ephemeral ports) is `other` 353 times and `private` 4 times.
"""

from __future__ import annotations

TCP_SERVICES: dict[int, str] = {
    7: "echo", 9: "discard", 11: "systat", 13: "daytime", 15: "netstat", 20: "ftp_data",
    21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 37: "time", 42: "name", 43: "whois",
    53: "domain", 57: "mtp", 70: "gopher", 71: "remote_job", 77: "rje", 79: "finger", 80: "http",
    84: "ctf", 87: "link", 95: "supdup", 101: "hostnames", 102: "iso_tsap", 105: "csnet_ns",
    109: "pop_2", 110: "pop_3", 111: "sunrpc", 113: "auth", 117: "uucp_path", 119: "nntp",
    137: "netbios_ns", 138: "netbios_dgm", 139: "netbios_ssn", 143: "imap4", 150: "sql_net",
    175: "vmnet", 179: "bgp", 194: "IRC", 210: "Z39_50", 389: "ldap", 433: "nnsp",
    443: "http_443", 512: "exec", 513: "login", 514: "shell", 515: "printer", 520: "efs",
    530: "courier", 540: "uucp", 543: "klogin", 544: "kshell", 1911: "mtp", 2784: "http_2784",
    5190: "aol", 6667: "IRC", 8001: "http_8001", 8080: "http",
    **{p: "X11" for p in range(6000, 6064)},
}
# pm_dump and harvest have no registered port; they stay unassigned here.

UDP_SERVICES: dict[int, str] = {53: "domain_u", 69: "tftp_u", 123: "ntp_u"}


def port_service(proto: int, resp_port: int, orig_port: int) -> str:
    """Service of a TCP (6) or UDP (17) connection from its responder port."""
    if proto == 6:
        name = TCP_SERVICES.get(resp_port)
        if name is None and orig_port == 20:
            return "ftp_data"
    else:
        name = UDP_SERVICES.get(resp_port)
    if name is not None:
        return name
    return "private" if resp_port < 1024 else "other"


def icmp_service(version: int, icmp_type: int, code: int) -> str:
    """Service of an ICMP (version 4) or ICMPv6 (version 6) message.

    Unreachable [choice]: port and protocol unreachable are `urp_i` (a quoted datagram,
    36-183 bytes as in the data's normal urp_i rows); every other code is `urh_i`.
    """
    if version == 4:
        if icmp_type == 8:
            return "eco_i"
        if icmp_type == 0:
            return "ecr_i"
        if icmp_type == 3:
            return "urp_i" if code in (2, 3) else "urh_i"
        if icmp_type == 5:
            return "red_i"
        if icmp_type in (11, 13, 14):
            return "tim_i"
        return "oth_i"
    if icmp_type == 128:
        return "eco_i"
    if icmp_type == 129:
        return "ecr_i"
    if icmp_type == 1:
        return "urp_i" if code == 4 else "urh_i"
    if icmp_type == 137:
        return "red_i"
    if icmp_type == 3:
        return "tim_i"
    return "oth_i"
