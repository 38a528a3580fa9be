"""The built-in journal rules: the defaults that ``journal.rules`` overrides and extends.

Each rule matches one message that kubelet, a container runtime or the kernel writes
before (or while) a disk fills. Every text was checked against the component's source;
``BuiltinRule.origin`` says where (file and function) and ``BuiltinRule.message`` quotes
the format string, so docs/journal.md is generated from this table. The test lines in
the messages' real shapes live in tests/journal/samples.py.

Patterns are Python regular expressions searched (not anchored) in the journal's
MESSAGE field, as bytes; klog and logrus quote values, so a pattern may see ``\\"``.
"""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("info", "warning", "error", "critical")
RULE_KINDS = ("event", "condition")


@dataclass(frozen=True)
class RuleSpec:
    """One rule as configured: what to match, where, and what a match means.

    ``units``/``identifiers``/``kernel`` scope the rule to entries of those systemd units,
    syslog identifiers or the kernel; a rule with none of them sees every entry read.
    ``kind`` event: each match is an event. condition: the first match makes the
    condition active (one event), it stays active until ``clear_pattern`` matches in the
    same scope or ``timeout`` seconds pass without a match. ``count`` > 1 makes a rate
    rule: it fires when ``count`` matches fall within ``window`` seconds.
    """

    reason: str
    pattern: str
    severity: str = "warning"
    units: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    kernel: bool = False
    kind: str = "event"
    clear_pattern: str | None = None
    timeout: int | None = None
    count: int = 1
    window: int | None = None


@dataclass(frozen=True)
class BuiltinRule:
    """A built-in rule and where its message comes from."""

    spec: RuleSpec
    component: str
    origin: str  # file and function in the component's source
    message: str  # the format string or literal there


@dataclass(frozen=True)
class Scope:
    """Which entries a rule sees: systemd units, syslog identifiers, the kernel."""

    units: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    kernel: bool = False


def _spec(
    reason: str,
    pattern: str,
    severity: str,
    scope: Scope,
    *,
    kind: str = "event",
    timeout: int | None = None,
) -> RuleSpec:
    return RuleSpec(
        reason,
        pattern,
        severity,
        scope.units,
        scope.identifiers,
        scope.kernel,
        kind=kind,
        timeout=timeout,
    )


_K8S_UNITS = ("k3s.service", "k3s-agent.service")
KUBELET = Scope(("kubelet.service", *_K8S_UNITS), ("kubelet", "k3s"))
CONTAINERD = Scope(("containerd.service", *_K8S_UNITS), ("containerd", "k3s"))
DOCKERD = Scope(("docker.service",), ("dockerd",))
CRIO = Scope(("crio.service",), ("conmon", "crio"))
RUNTIMES_AND_KUBELET = Scope(
    ("kubelet.service", "containerd.service", "docker.service", "crio.service", *_K8S_UNITS),
    ("kubelet", "containerd", "dockerd", "crio", "conmon", "k3s"),
)
KERNEL = Scope(kernel=True)

_EVICTION = "pkg/kubelet/eviction/eviction_manager.go, managerImpl.synchronize"
_RESOURCE = r'(?:" resourceName="| )(?:ephemeral-storage|inodes)\b'

BUILTIN_RULES: tuple[BuiltinRule, ...] = (
    BuiltinRule(
        _spec(
            "EvictionPressure",
            r"[Ee]viction manager: attempting to reclaim" + _RESOURCE,
            "warning",
            KUBELET,
            kind="condition",
            timeout=300,
        ),
        "kubelet",
        _EVICTION,
        'klog.InfoS("Eviction manager: attempting to reclaim", "resourceName", resourceToReclaim);'
        ' before 1.20: klog.Warningf("eviction manager: attempting to reclaim %v", ...)',
    ),
    BuiltinRule(
        _spec(
            "EvictingPods",
            r"[Ee]viction manager: must evict pod\(s\) to reclaim" + _RESOURCE,
            "error",
            KUBELET,
        ),
        "kubelet",
        _EVICTION,
        'klog.InfoS("Eviction manager: must evict pod(s) to reclaim", "resourceName", ...);'
        ' before 1.20: klog.Infof("eviction manager: must evict pod(s) to reclaim %v", ...)',
    ),
    BuiltinRule(
        _spec(
            "EvictionFailed",
            r"[Ee]viction manager: unable to evict any pods from the node",
            "error",
            KUBELET,
        ),
        "kubelet",
        _EVICTION,
        'klog.InfoS("Eviction manager: unable to evict any pods from the node")',
    ),
    BuiltinRule(
        _spec(
            "ImageGCFailed",
            r"Image garbage collection failed multiple times in a row",
            "error",
            KUBELET,
        ),
        "kubelet",
        "pkg/kubelet/kubelet.go, Kubelet.StartGarbageCollection",
        'klog.ErrorS(err, "Image garbage collection failed multiple times in a row");'
        ' before 1.20: klog.Errorf("Image garbage collection failed multiple times in a row:'
        ' %v", err)',
    ),
    BuiltinRule(
        _spec(
            "ImageGCCannotFreeSpace",
            r"[Ff]ailed to garbage collect required amount of images",
            "critical",
            KUBELET,
        ),
        "kubelet",
        "pkg/kubelet/images/image_gc_manager.go, realImageGCManager.GarbageCollect",
        'fmt.Errorf("Failed to garbage collect required amount of images. Attempted to free'
        ' %d bytes, but only found %d bytes eligible to free."); before 1.29: "failed to'
        " garbage collect required amount of images. Wanted to free %d bytes, but freed %d"
        ' bytes" (the err of the line above)',
    ),
    BuiltinRule(
        _spec(
            "InvalidImageFsCapacity", r"invalid capacity 0 on image filesystem", "warning", KUBELET
        ),
        "kubelet",
        "pkg/kubelet/images/image_gc_manager.go, realImageGCManager.GarbageCollect",
        'goerrors.New("invalid capacity 0 on image filesystem") (the err of the image GC line)',
    ),
    BuiltinRule(
        _spec(
            "ContainerLogRotateFailed",
            r'Failed to rotate (?:log for container|log "[^"]*" for container|container logs)',
            "error",
            KUBELET,
        ),
        "kubelet",
        "pkg/kubelet/logs/container_log_manager.go, containerLogManager.processContainer"
        " and Start (rotateLogs before 1.30)",
        'klog.ErrorS(err, "Failed to rotate log for container", ...); klog.ErrorS(err,'
        ' "Failed to rotate container logs"); before 1.21: klog.Errorf("Failed to rotate'
        ' log %q for container %q: %v", ...)',
    ),
    BuiltinRule(
        _spec(
            "ReopenContainerLogFailed", r"ReopenContainerLog for \S+ failed", "error", CONTAINERD
        ),
        "containerd",
        "internal/cri/instrument/instrumented_service.go (pkg/cri/instrument in 1.7,"
        " pkg/cri/server in 1.6), instrumentedService.ReopenContainerLog",
        'log.G(ctx).WithError(err).Errorf("ReopenContainerLog for %q failed", id)',
    ),
    BuiltinRule(
        _spec(
            "NoSpaceLeftOnDevice", r"(?i:no space left on device)", "critical", RUNTIMES_AND_KUBELET
        ),
        "containerd, dockerd, cri-o/conmon, kubelet",
        "strerror(ENOSPC) inside an error: containerd's PullImage/StartContainer failures"
        " (instrumentedService), dockerd's layer registration"
        " (daemon/internal/distribution/xfer/download.go) and log writes, conmon's %m",
        '"no space left on device" (Go syscall.ENOSPC.Error()); conmon prints C strerror'
        ' "No space left on device"',
    ),
    BuiltinRule(
        _spec(
            "DockerLogWriteFailed",
            r"Error writing log message|Failed to log msg .* for logger",
            "error",
            DOCKERD,
        ),
        "dockerd",
        "daemon/logger/logger_error.go, logDriverError (Docker 23+; daemon/logger/ring.go"
        " and copier.go, Copier.copySrc, in 20.10)",
        '.Error("Error writing log message") with fields driver, error, message; 20.10:'
        ' logrus.Errorf("Failed to log msg %q for logger %s: %s", ...)',
    ),
    BuiltinRule(
        _spec(
            "DockerLogRotateFailed",
            r"Error rotating log file, log data may have been lost",
            "error",
            DOCKERD,
        ),
        "dockerd",
        "daemon/logger/loggerutils/logfile.go, LogFile.rotate",
        'WithError(err).Warn("Error rotating log file, log data may have been lost")',
    ),
    BuiltinRule(
        _spec("ConmonLogWriteFailed", r"write_k8s_log failed", "error", CRIO),
        "cri-o (conmon)",
        "src/ctr_logging.c, write_to_logs",
        'nwarn("write_k8s_log failed") -> syslog "conmon <cid> <nwarn>: write_k8s_log failed"',
    ),
    BuiltinRule(
        _spec("ConmonLogRotateFailed", r"Failed to rotate log file", "error", CRIO),
        "cri-o (conmon)",
        "src/ctr_logging.c, perform_file_rotation (conmon 2.1.14+)",
        'nwarnf("Failed to rotate log file: %m")',
    ),
    BuiltinRule(
        _spec("Ext4Error", r"EXT4-fs error \(device [^)]+\)", "error", KERNEL),
        "kernel",
        "fs/ext4/super.c, __ext4_error and __ext4_error_inode",
        'printk(KERN_CRIT "EXT4-fs error (device %s): %s:%d: comm %s: %pV\\n", ...)',
    ),
    BuiltinRule(
        _spec(
            "ReadonlyFilesystem",
            r"Remounting filesystem read-only",
            "critical",
            KERNEL,
            kind="condition",
            timeout=6 * 3600,
        ),
        "kernel",
        "fs/ext4/super.c, ext4_handle_error (also ext2, ext3, f2fs)",
        'ext4_msg(sb, KERN_CRIT, "Remounting filesystem read-only") -> "EXT4-fs (dev):'
        ' Remounting filesystem read-only"',
    ),
    BuiltinRule(
        _spec(
            "XfsShutdown",
            r"XFS \([^)]+\): (?:.*Shutting down filesystem|Filesystem has been shut down)",
            "critical",
            KERNEL,
            kind="condition",
            timeout=6 * 3600,
        ),
        "kernel",
        "fs/xfs/xfs_fsops.c, xfs_do_force_shutdown; fs/xfs/xfs_log.c, xlog_force_shutdown",
        'xfs_alert_tag(mp, tag, "%s (0x%x) detected at %pS (%s:%d).  Shutting down'
        ' filesystem.", ...); newer: "Filesystem has been shut down due to log error (0x%x)."',
    ),
    BuiltinRule(
        _spec("BufferIOError", r"Buffer I/O error\b", "error", KERNEL),
        "kernel",
        "fs/buffer.c, buffer_io_error",
        'printk_ratelimited(KERN_ERR "Buffer I/O error on dev %pg, logical block %llu%s\\n", ...)',
    ),
)

BUILTIN_BY_REASON: dict[str, RuleSpec] = {b.spec.reason: b.spec for b in BUILTIN_RULES}
