"""`kdd-sensor bench` (`make bench`): throughput and memory on about a million packets.

Builds two captures from the project's own captures: a benign mix (web, DNS, SMTP, FTP, telnet,
SSH sessions) and an attack-heavy mix (SYN flood, scan, sweep, smurf, land, teardrop),
each as time-shifted copies with every IPv4 address remapped per copy, so connections do not
collide. Then, pinned to one core, three rounds of `kdd-sensor extract`, tshark's own
connection tracking (`tshark -q -n -r FILE -z conv,tcp -z conv,udp`) and the full
`kdd-sensor replay` (pcap to alerts) side by side: medians, and the ratio as the median of the
rounds' tshark/extract. Then a spoofed SYN flood from one million distinct sources through a
capped connection table: peak RSS, evictions, alerts. Last, as root, the same flood live:
tcpreplay at 25,000 packets/s into a veth the sensor captures on.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

from feature_extractor.capture_file import open_capture

ROOT = Path(__file__).resolve().parent.parent
PCAPS = ROOT / "pcaps"
BENIGN = ["realtools/normal_web.pcap", "realtools/normal_dns.pcap", "realtools/normal_smtp.pcap",
          "realtools/normal_ftp.pcap", "public/zeek_wikipedia.pcap", "public/zeek_http_get.pcap",
          "public/ndpi_ftp.pcap", "public/ndpi_telnet.pcap", "public/ndpi_smtp.pcap",
          "public/tcpreplay_test.pcap", "public/zeek_ssh_sshguess.pcap"]
ATTACK = ["realtools/synflood.pcap", "realtools/portscan.pcap", "realtools/icmpsweep.pcap",
          "realtools/smurf.pcap", "realtools/land.pcap", "realtools/teardrop.pcap",
          "realtools/normal_web.pcap", "realtools/normal_dns.pcap"]
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def _ethernet_ipv4(paths: list[str]) -> list[tuple[float, bytes]]:
    """The Ethernet/IPv4 frames of the captures, each file's time starting at zero."""
    frames = []
    for rel in paths:
        packets = [(ts, f) for ts, lt, f in open_capture(str(PCAPS / rel))
                   if lt == 1 and len(f) >= 34 and f[12:14] == b"\x08\x00"]
        if packets:
            t0 = packets[0][0]
            frames += [(ts - t0, f) for ts, f in packets]
    frames.sort(key=lambda p: p[0])
    return frames


def build_mix(paths: list[str], target: int, spacing: float, out: Path, seed: int) -> int:
    """Copies of the frames, copy i shifted by i * spacing s, addresses remapped per copy."""
    frames = _ethernet_ipv4(paths)
    rng = random.Random(seed)
    copies = max(1, target // len(frames))
    records = []
    for i in range(copies):
        shift = 1_700_000_000.0 + i * spacing
        remap: dict[bytes, bytes] = {}
        for ts, f in frames:
            src, dst = f[26:30], f[30:34]
            for a in (src, dst):
                if a not in remap:
                    remap[a] = bytes([10, rng.randrange(256), rng.randrange(256),
                                      rng.randrange(1, 255)])
            frame = f[:26] + remap[src] + remap[dst] + f[34:]
            records.append((shift + ts, frame))
    records.sort(key=lambda r: r[0])
    with open(out, "wb") as fh:
        fh.write(PCAP_HEADER)
        for ts, frame in records:
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            fh.write(frame)
    return len(records)


def spoofed_flood(n: int, rate: float, out: Path, seed: int) -> None:
    """n SYNs to one web server from n distinct random sources at `rate` per second."""
    rng = random.Random(seed)
    eth = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
    sources = rng.sample(range(0x0B000000, 0xDF000000), n)
    with open(out, "wb") as fh:
        fh.write(PCAP_HEADER)
        for i, src in enumerate(sources):
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0,
                             src.to_bytes(4, "big"), bytes([192, 0, 2, 80]))
            tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), 80, rng.getrandbits(32),
                              0, 0x50, 0x02, 64240, 0, 0)
            frame = eth + ip + tcp
            ts = 1_700_000_000.0 + i / rate
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            fh.write(frame)


def live_flood(me: list[str], flood: Path, pps: int, seconds: int, out: Path) -> str:
    """The flood replayed by tcpreplay (cpu 1) into a veth between two network namespaces made
    here, the sensor capturing live on the other end (cpu 0): how far behind it is when the
    flood ends (a SIGUSR1 then writes its counters), kernel drops, and what a SIGTERM's drain
    of the capture buffer leaves."""
    if os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("tcpreplay")):
        return "live SYN flood: skipped (needs root, iproute2 and tcpreplay)"
    a, b = f"kddbench-a{os.getpid()}", f"kddbench-b{os.getpid()}"

    def sh(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True)

    n = pps * seconds
    cfg, log = out / "live.yaml", out / "live.log"
    cfg.write_text("interface: kddbench-vb\nstats: {interval: 0}\n"
                   "extractor: {max_connections: 10000}\n"
                   f"alerts: {{eve: {{enabled: true, path: {os.devnull}}}}}\n")
    sh("ip", "netns", "add", a)
    sh("ip", "netns", "add", b)
    sensor = None
    try:
        sh("ip", "link", "add", "kddbench-va", "netns", a, "type", "veth", "peer", "name",
           "kddbench-vb", "netns", b)
        sh("ip", "-n", a, "link", "set", "kddbench-va", "up")
        sh("ip", "-n", b, "link", "set", "kddbench-vb", "up")
        with open(log, "w") as fh:
            sensor = subprocess.Popen(["ip", "netns", "exec", b, "taskset", "-c", "0", *me, "run",
                                       "-c", str(cfg)], stdout=subprocess.DEVNULL, stderr=fh)
        deadline = time.monotonic() + 60
        while "capturing on" not in log.read_text():
            if time.monotonic() > deadline or sensor.poll() is not None:
                raise RuntimeError(f"the sensor did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        sh("ip", "netns", "exec", a, "taskset", "-c", "1", "tcpreplay", "-q", "-i", "kddbench-va",
           "--pps", str(pps), "--limit", str(n), str(flood))
        sensor.send_signal(signal.SIGUSR1)
        time.sleep(1.0)
        sensor.send_signal(signal.SIGTERM)
        sensor.wait(timeout=120)
    finally:
        if sensor is not None and sensor.poll() is None:
            sensor.kill()
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)
    counters = [dict(kv.split("=") for kv in line.split("stats: ")[1].split())
                for line in log.read_text().splitlines() if "stats: " in line]
    at_end, final = counters[0], counters[-1]
    return (f"live SYN flood: {n:,} packets at {pps:,}/s by tcpreplay into a veth, EVE for "
            f"every alert: {int(at_end['packets']):,} analysed when the flood ended, "
            f"{int(final['packets']):,} by the exit, kernel drops {final['kernel_dropped']}, "
            f"alerts {int(final['alerts']):,}")


def timed(cmd: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (MB) and stderr of a command pinned to one core.

    The peak is what the command reports of itself (VmHWM): a forked child's ru_maxrss
    also counts the pages of this process, which holds the whole capture it built.
    """
    started = time.perf_counter()
    proc = subprocess.run(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    m = re.search(r"peak (?:RSS|memory)\s+(\d+) MB", proc.stderr)
    return elapsed, int(m.group(1)) if m else 0, proc.stderr


def interleaved(cmds: dict[str, list[str] | None], runs: int) -> dict[str, tuple]:
    """Each command once per round, round after round: on a shared machine whose speed drifts
    (tshark alone moved between 13 and 18 s on one file here), tools timed side by side see the
    same conditions. Per command: median seconds, peak RSS, last stderr, and the seconds of
    every round (for per-round ratios)."""
    rounds: dict[str, list] = {name: [] for name, cmd in cmds.items() if cmd}
    for _ in range(runs):
        for name in rounds:
            rounds[name].append(timed(cmds[name]))
    return {name: (statistics.median(r[0] for r in res), max(r[1] for r in res), res[-1][2],
                   [r[0] for r in res]) for name, res in rounds.items()}


def _records(stderr: str) -> int:
    for line in stderr.splitlines():
        if line.startswith("extract:") and "records" in line:
            return int(line.split("records ")[1].split()[0])
    return 0


def bench_command(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = 1 if args.quick else 3
    target = args.packets // (10 if args.quick else 1)
    me = [sys.executable, "-m", "sensor.cli"]
    print(f"kdd-sensor bench: {target:,} packets per mix, median of {runs} rounds side by side, "
          f"one core (cpu 0)")
    rows = []
    for name, paths, spacing in (("benign", BENIGN, 0.5), ("attack", ATTACK, 5.0)):
        capture = out / f"{name}.pcap"
        n = build_mix(paths, target, spacing, capture, seed=7)
        timings = interleaved({
            "extract": [*me, "extract", str(capture), "-o", os.devnull],
            "tshark": ["tshark", "-q", "-n", "-r", str(capture), "-z", "conv,tcp", "-z",
                       "conv,udp"] if shutil.which("tshark") else None,
            "replay": [*me, "replay", str(capture), "--eve", os.devnull, "--no-progress"],
        }, runs)
        ext_s, ext_rss, err, ext_rounds = timings["extract"]
        records = _records(err)
        tshark_s = ratio = None
        if "tshark" in timings:
            tshark_s, _, _, tshark_rounds = timings["tshark"]
            ratio = statistics.median(t / e for t, e in zip(tshark_rounds, ext_rounds,
                                                             strict=True))
        rep_s, rep_rss, _, _ = timings["replay"]
        rows.append((name, n, records, ext_s, ext_rss, tshark_s, ratio, rep_s, rep_rss))
    print()
    print(f"{'mix':8} {'packets':>10} {'conns':>9} {'extract pkt/s':>14} {'conn/s':>9} "
          f"{'RSS MB':>7} {'tshark pkt/s':>13} {'ratio':>6} {'replay pkt/s':>13} "
          f"{'replay/extract':>15} {'RSS MB':>7}")
    for name, n, records, ext_s, ext_rss, tshark_s, ratio, rep_s, rep_rss in rows:
        tshark_rate = f"{n / tshark_s:13,.0f}" if tshark_s else f"{'n/a':>13}"
        ratio = f"{ratio:6.2f}" if ratio else f"{'n/a':>6}"
        print(f"{name:8} {n:10,} {records:9,} {n / ext_s:14,.0f} {records / ext_s:9,.0f} "
              f"{ext_rss:7} {tshark_rate} {ratio} {n / rep_s:13,.0f} {ext_s / rep_s:15.2f} "
              f"{rep_rss:7}")
    flood = out / "spoofed_flood.pcap"
    n_flood = 100_000 if args.quick else 1_000_000
    spoofed_flood(n_flood, 25_000.0, flood, seed=11)
    cfg = out / "capped.yaml"
    cfg.write_text("extractor: {max_connections: 10000}\n")
    secs, rss, err = timed([*me, "replay", str(flood), "-c", str(cfg), "--eve", os.devnull,
                            "--no-progress"])
    evicted = next((line.split()[-1] for line in err.splitlines()
                    if "evicted connections" in line), "0")
    alerts = next((line.split(None, 1)[1].strip() for line in err.splitlines()
                   if line.strip().startswith("alerts")), "?")
    print(f"\nspoofed SYN flood: {n_flood:,} distinct sources at 25,000/s, table capped at "
          f"10,000: peak RSS {rss} MB, evicted {evicted}, alerts {alerts}, "
          f"{n_flood / secs:,.0f} packets/s")
    print(live_flood(me, flood, 25_000, 2 if args.quick else 10, out))
    return 0
