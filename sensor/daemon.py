"""`replay` and `run`: assemble the pipeline from the configuration and drive it.

Signals (both commands): SIGTERM/SIGINT flush every open connection through the model and the
sinks, then exit 0; SIGHUP re-opens output files; SIGUSR1 writes the counters to the log;
SIGUSR2 reloads configuration and model (sinks, thresholds, confidences) without a restart.
Extractor settings (timeouts, table caps, interim ages) apply from the next start.
"""

from __future__ import annotations

import grp
import os
import pwd
import select
import signal
import socket
import sys
import time

from feature_extractor.capture_file import CaptureError, feed_captures
from feature_extractor.extract_cli import peak_rss_mb
from feature_extractor.extractor import Extractor
from feature_extractor.record import CLASSES
from models.runtime import DEFAULT_MODEL, Classifier, ModelError
from sensor.config import EX_CONFIG, Config, ConfigError, load_config
from sensor.pipeline import ConnectionLog, Pipeline
from sensor.sinks import JournaldSink, SyslogSink, cef_sink, eve_sink, fast_sink
from sensor.stats import LossWatch, MetricsServer, log_line, loss_percent, prometheus_text
from sensor.systemd import Watchdog, notify
from sensor.thresholds import AlertFilter


def log(message: str) -> None:
    print(f"kdd-sensor: {message}", file=sys.stderr, flush=True)


class Signals:
    def __init__(self) -> None:
        self.stop = self.hurry = self.reopen = self.dump = self.reload = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "reopen", True))
        signal.signal(signal.SIGUSR1, lambda *_: setattr(self, "dump", True))
        signal.signal(signal.SIGUSR2, lambda *_: setattr(self, "reload", True))

    def _stop(self, *_) -> None:
        self.hurry = self.stop  # a second SIGTERM or Ctrl-C: stop draining the capture
        self.stop = True


def overrides_from(args) -> dict:
    out: dict = {}
    if getattr(args, "eve", None):
        out["alerts.eve.enabled"] = True
        out["alerts.eve.path"] = args.eve
    if getattr(args, "fast", None):
        out["alerts.fast.enabled"] = True
        out["alerts.fast.path"] = args.fast
    if getattr(args, "syslog", None):
        out["alerts.syslog.enabled"] = True
        out["alerts.syslog.target"] = args.syslog
    if getattr(args, "connections", None):
        out["connections_log"] = args.connections
    if getattr(args, "model", None):
        out["model.path"] = args.model
    if getattr(args, "interface", None):
        out["interface"] = args.interface
    if getattr(args, "bpf", None):
        out["bpf"] = args.bpf
    return out


def build_sinks(cfg: Config, default_eve_stdout: bool) -> list:
    a = cfg["alerts"]
    sinks: list = []
    host = socket.gethostname()
    if a["eve"]["enabled"]:
        sinks.append(eve_sink(a["eve"]["path"], host))
    if a["fast"]["enabled"]:
        sinks.append(fast_sink(a["fast"]["path"]))
    if a["cef"]["enabled"]:
        sinks.append(cef_sink(a["cef"]["path"], a["cef"]["format"]))
    if a["syslog"]["enabled"]:
        s = a["syslog"]
        try:
            sinks.append(SyslogSink(s["target"], s["format"], s["facility"], s["spool_dir"],
                                    s["spool_max_mb"]))
        except OSError as exc:
            raise ConfigError("alerts.syslog.spool_dir", f"cannot use it: {exc}") from None
    if a["journald"]["enabled"]:
        try:
            sinks.append(JournaldSink())
        except ImportError:
            raise ConfigError("alerts.journald.enabled",
                              "systemd-python is not installed (pip install '.[systemd]')") from None
    if not sinks and default_eve_stdout:
        sinks.append(eve_sink("-", host))
    return sinks


def build_pipeline(cfg: Config, default_eve_stdout: bool) -> Pipeline:
    model_path = cfg["model"]["path"] or str(DEFAULT_MODEL)
    classifier = Classifier(model_path)
    m = cfg["model"]
    return Pipeline(
        Extractor(cfg.extractor_config()), classifier, dict(m["confidence"]),
        build_sinks(cfg, default_eve_stdout),
        AlertFilter(cfg["alerts"]["thresholds"], cfg["alerts"]["suppress"]),
        ConnectionLog(cfg["connections_log"]) if cfg["connections_log"] else None,
        batch_size=m["batch_size"], flush_seconds=m["flush_ms"] / 1000.0,
        cache_size=m["cache_size"], host=socket.gethostname())


def reload(pipeline: Pipeline, config_path: str | None, overrides: dict,
           default_eve_stdout: bool) -> None:
    """Swap in a new configuration and model; keep the old ones if either is bad."""
    try:
        cfg = load_config(config_path, overrides)
        classifier = Classifier(cfg["model"]["path"] or str(DEFAULT_MODEL))
        sinks = build_sinks(cfg, default_eve_stdout)
    except (ConfigError, ModelError) as exc:
        log(f"reload failed, keeping the running configuration: {exc}")
        return
    for sink in pipeline.sinks:
        sink.close()
    pipeline.classifier = classifier
    pipeline.cache.clear()
    pipeline.sinks = sinks
    pipeline.confidence = dict(cfg["model"]["confidence"])
    pipeline.filter = AlertFilter(cfg["alerts"]["thresholds"], cfg["alerts"]["suppress"])
    log(f"reloaded configuration and model {classifier.path} (version {classifier.version})")


def _setup(args, default_eve_stdout: bool) -> tuple[Config, dict, Pipeline] | int:
    overrides = overrides_from(args)
    try:
        cfg = load_config(args.config, overrides)
        pipeline = build_pipeline(cfg, default_eve_stdout)
    except ConfigError as exc:
        log(str(exc))
        return EX_CONFIG
    except ModelError as exc:
        log(f"error: {exc}")
        return EX_CONFIG
    except OSError as exc:
        log(f"error: {exc}")
        return 1
    return cfg, overrides, pipeline


def _operate(sig: Signals, pipeline: Pipeline, args, overrides: dict, default_eve: bool,
             capture_stats=None) -> None:
    if sig.reopen:
        sig.reopen = False
        pipeline.reopen()
        log("re-opened output files")
    if sig.dump:
        sig.dump = False
        log(log_line(pipeline.stats(), capture_stats() if capture_stats else None))
    if sig.reload:
        sig.reload = False
        reload(pipeline, args.config, overrides, default_eve)


# -- replay ------------------------------------------------------------------------------------


def replay_command(args) -> int:
    setup = _setup(args, default_eve_stdout=True)
    if isinstance(setup, int):
        return setup
    cfg, overrides, pipeline = setup
    sig = Signals()
    progress = Progress(args.files) if sys.stderr.isatty() and not args.no_progress else None
    started = time.perf_counter()
    status = 0
    recorded = args.speed == "recorded"
    first_ts = wall0 = None

    def between_batches() -> None:
        if progress:
            progress.update(pipeline)
        pipeline.tick()
        _operate(sig, pipeline, args, overrides, True)
        if sig.stop:
            raise _Stopped

    def packet(ts: float, linktype: int, frame: bytes) -> None:
        nonlocal first_ts, wall0
        if recorded:
            if first_ts is None:
                first_ts, wall0 = ts, time.monotonic()
            delay = (ts - first_ts) - (time.monotonic() - wall0)
            if delay > 0:
                time.sleep(delay)
                pipeline.tick()
        pipeline.packet(ts, linktype, frame)
        if pipeline.packets & 0x3FF == 0:
            between_batches()

    def feed_pcap(buf: bytes, pos: int, little: bool, nano: bool, linktype: int) -> int:
        pos = pipeline.feed_pcap(buf, pos, little, nano, linktype)
        between_batches()
        return pos

    try:
        for path in args.files:
            pipeline.pcap_filename = path
            feed_captures([path], packet, None if recorded else feed_pcap)
    except CaptureError as exc:
        log(f"error: {exc}")
        status = 1
    except _Stopped:
        pass
    pipeline.finish(as_timeouts=True)
    pipeline.close()
    if progress:
        progress.clear()
    elapsed = time.perf_counter() - started
    print(summary_table(pipeline, elapsed, pipeline.extractor.first_ts), file=sys.stderr)
    return status


class _Stopped(Exception):
    """SIGTERM or SIGINT during a replay: stop reading, flush what was read."""


class Progress:
    """A one-line progress bar on the terminal, by bytes of capture read."""

    def __init__(self, files: list[str]):
        self.total = sum(os.path.getsize(f) for f in files if f != "-" and os.path.isfile(f))
        self.done = 0
        self.last = 0.0
        self.started = time.monotonic()

    def update(self, pipeline: Pipeline) -> None:
        self.done = pipeline.extractor.bytes + 16 * pipeline.packets
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        share = min(1.0, self.done / self.total) if self.total else 0.0
        bar = "#" * int(share * 30)
        rate = pipeline.packets / max(now - self.started, 1e-9)
        sys.stderr.write(f"\r[{bar:<30}] {share:4.0%} {pipeline.packets:,} packets "
                         f"{sum(pipeline.alerts.values()):,} alerts {rate:,.0f} pkt/s ")
        sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r" + " " * 100 + "\r")


def _listed(items) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in items)


def _total(counts: dict, items=None) -> str:
    """`total (kind n, kind n)`, kinds sorted by name unless `items` orders them."""
    return f"{sum(counts.values()):,} ({_listed(items or sorted(counts.items()))})"


def summary_table(pipeline: Pipeline, elapsed: float, first_ts: float | None) -> str:
    s = pipeline.stats()
    rows = [("packets", f"{s['packets']:,}")]
    if s["decode_errors"]:
        rows.append(("skipped packets", _total(s["decode_errors"], sorted(
            s["decode_errors"].items(), key=lambda kv: -kv[1]))))
    if s["tunnelled"]:
        rows.append(("tunnelled packets", _listed(sorted(s["tunnelled"].items()))))
    loss = s["capture_loss"]
    if loss["acks"]:
        rows.append(("capture loss", f"{loss_percent(loss):.2f}% ({loss['gaps']:,} of "
                                     f"{loss['acks']:,} TCP ACKs for data never captured, "
                                     f"{loss['gap_bytes']:,} bytes)"))
    records = sum(s["records"].values())
    rows.append(("connections", _total(s["records"])))
    rows.append(("predicted", _listed((c, s["predicted"].get(c, 0)) for c in CLASSES)))
    if s["snapshots"]:
        rows.append(("open connections judged",
                     _listed((c, s["snapshots"].get(c, 0)) for c in CLASSES)))
    rows.append(("alerts", _total(s["alerts"])))
    if s["interim_repeats"]:
        rows.append(("alerts not repeated", f"{s['interim_repeats']:,}"))
    for held in ("suppressed", "thresholded"):
        if s[held]:
            rows.append((f"alerts {held}", _total(s[held])))
    if s["connections_evicted"]:
        rows.append(("evicted connections", f"{s['connections_evicted']:,}"))
    for key, counters in s.items():
        if key.startswith("sink_"):
            rows.append((f"sink {key[5:]}", _listed(counters.items())))
    if first_ts is not None and pipeline.first_alert_ts:
        rows.append(("first alert (capture time)", ", ".join(
            f"{k} +{v - first_ts:.2f} s" for k, v in sorted(pipeline.first_alert_ts.items()))))
    rate = s["packets"] / elapsed if elapsed > 0 else 0.0
    rows.append(("throughput", f"{rate:,.0f} packets/s, {records / max(elapsed, 1e-9):,.0f} "
                               f"connections/s ({elapsed:.2f} s)"))
    rows.append(("peak memory", f"{peak_rss_mb()} MB resident"))
    width = max(len(k) for k, _ in rows)
    return "kdd-sensor replay summary\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


# -- live ----------------------------------------------------------------------------------------


def drop_privileges(user: str) -> None:
    """After the capture socket is open: become `user`, with its group and no others."""
    if os.geteuid() != 0 or not user:
        return
    entry = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    log(f"running as {user} ({entry.pw_uid}:{grp.getgrgid(entry.pw_gid).gr_name})")


def drain_capture(pipeline: Pipeline, cap, budget: float, sig: Signals,
                  watchdog: Watchdog) -> int:
    """On a stop, the packets the kernel already holds are analysed too (a flood can leave
    hundreds of thousands in the buffer), for at most `budget` seconds or until a second
    signal. Returns about how many were left unread."""
    deadline = time.monotonic() + budget
    while not sig.hurry:
        data, meta = cap.read_batch()
        if not meta:
            return 0
        pipeline.feed_batch(data, meta, cap.linktype)
        now = time.monotonic()
        watchdog.tick(now)
        if now >= deadline:
            break
    counts = cap.stats()
    return max(0, counts["received"] - counts["kernel_dropped"] - pipeline.packets)


def run_command(args) -> int:
    from sensor.capture import CaptureOpenError, LiveCapture

    setup = _setup(args, default_eve_stdout=False)
    if isinstance(setup, int):
        return setup
    cfg, overrides, pipeline = setup
    if not pipeline.sinks:
        log("no alert sink enabled; alerts go to EVE on stdout")
        pipeline.sinks.append(eve_sink("-", socket.gethostname()))
    try:
        cap = LiveCapture(cfg["interface"], cfg["bpf"], cfg["snaplen"], cfg["buffer_mb"],
                          cfg["promiscuous"])
    except CaptureOpenError as exc:
        log(f"error: cannot open capture: {exc}")
        return 1
    try:
        metrics = MetricsServer(cfg["stats"]["prometheus"]) if cfg["stats"]["prometheus"] else None
    except OSError as exc:
        log(f"config error: stats.prometheus: cannot listen on {cfg['stats']['prometheus']}: "
            f"{exc}")
        return EX_CONFIG
    try:
        drop_privileges(cfg["user"])  # every file and socket is open by now
    except (KeyError, PermissionError) as exc:
        log(f"config error: user: cannot switch to {cfg['user']!r}: {exc}")
        return EX_CONFIG
    sig = Signals()
    notify("READY=1")
    log(f"capturing on {cfg['interface']} (link type {cap.linktype}), "
        f"model {pipeline.classifier.version}")
    watchdog = Watchdog()
    next_status = next_stats = time.monotonic()
    stats_every = cfg["stats"]["interval"]
    loss_watch = LossWatch()
    fd = cap.fileno()
    linktype = cap.linktype
    while not sig.stop:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            pipeline.feed_batch(*cap.read_batch(), linktype)
        pipeline.tick(time.time())
        now = time.monotonic()
        watchdog.tick(now)
        if now >= next_status:
            s = pipeline.stats()
            notify(f"STATUS=packets {s['packets']}, active {s['connections_active']}, "
                   f"alerts {sum(s['alerts'].values())}, "
                   f"kernel drops {cap.stats()['kernel_dropped']}, "
                   f"capture loss {loss_percent(s['capture_loss']):.2f}%")
            if metrics:
                metrics.update(prometheus_text(s, cap.stats()))
            next_status = now + 2.0
        if stats_every and now >= next_stats:
            if next_stats != now:
                s = pipeline.stats()
                log(log_line(s, cap.stats()))
                warning = loss_watch.check(s["capture_loss"])
                if warning:
                    log(warning)
            next_stats = now + stats_every
        _operate(sig, pipeline, args, overrides, False, cap.stats)
    notify("STOPPING=1")
    unread = drain_capture(pipeline, cap, cfg["stop_drain_seconds"], sig, watchdog)
    if unread:
        log(f"stopped with about {unread} captured packets unread after "
            f"{cfg['stop_drain_seconds']} s of draining (stop_drain_seconds)")
    pipeline.finish()
    log(log_line(pipeline.stats(), cap.stats()))
    pipeline.close()
    cap.close()
    if metrics:
        metrics.close()
    return 0
