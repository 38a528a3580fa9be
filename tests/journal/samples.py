"""Test lines for every built-in rule, in the real shape of their source's output.

kubelet: klog's header (``Lmmdd hh:mm:ss.uuuuuu PID file:line] ``, PID right-aligned in 7
columns) with the structured ``"Message" key="value"`` form (ErrorS puts err= first) and
the older unstructured form. containerd and dockerd: logrus's text formatter
(``time="..." level=... msg="..." key=...``, fields sorted, values quoted with Go's %q).
conmon: its syslog(3) form ``conmon <cid:20> <nwarn>: ...``. kernel: printk text as
journald stores it (no timestamp prefix). Each texts' source is in docs/journal.md.
"""

from __future__ import annotations

from dataclasses import dataclass

CID = "4b3c5d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"
POD_LOG = "/var/log/pods/default_web-7d9f_0f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f/web/0.log"


def klog(level: str, where: str, text: str, pid: int = 2211) -> str:
    return f"{level}1130 08:14:03.512907 {pid:7d} {where}] {text}"


def logrus(level: str, msg: str, **fields: str) -> str:
    quoted = msg.replace("\\", "\\\\").replace('"', '\\"')
    parts = ['time="2025-11-30T08:14:03.512907118Z"', f"level={level}", f'msg="{quoted}"']
    for key in sorted(fields):
        value = fields[key].replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'{key}="{value}"')
    return " ".join(parts)


def conmon(kind: str, text: str) -> str:
    return f"conmon {CID[:20]} <{kind}>: {text}"


@dataclass(frozen=True)
class Sample:
    """A message, who writes it, and the rules it must fire (empty: none)."""

    source: str  # kubelet, containerd, dockerd, conmon, kernel
    message: str
    rules: frozenset[str]
    form: str


def _s(source: str, message: str, form: str, *rules: str) -> Sample:
    return Sample(source, message, frozenset(rules), form)


ENOSPC_PULL = (
    'failed to pull and unpack image "docker.io/library/nginx:1.25": failed to extract layer '
    "sha256:1f0a9b8c: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/"
    "snapshots/42/fs/usr/lib/x86_64-linux-gnu/libcrypto.so.3: no space left on device: unknown"
)

SAMPLES: tuple[Sample, ...] = (
    # kubelet, structured (klog InfoS/ErrorS)
    _s(
        "kubelet",
        klog(
            "I",
            "eviction_manager.go:366",
            '"Eviction manager: attempting to reclaim" resourceName="ephemeral-storage"',
        ),
        "klog structured",
        "EvictionPressure",
    ),
    _s(
        "kubelet",
        klog(
            "I",
            "eviction_manager.go:366",
            '"Eviction manager: attempting to reclaim" resourceName="inodes"',
        ),
        "klog structured",
        "EvictionPressure",
    ),
    _s(
        "kubelet",
        klog(
            "I",
            "eviction_manager.go:377",
            '"Eviction manager: must evict pod(s) to reclaim" resourceName="ephemeral-storage"',
        ),
        "klog structured",
        "EvictingPods",
    ),
    _s(
        "kubelet",
        klog(
            "I",
            "eviction_manager.go:432",
            '"Eviction manager: unable to evict any pods from the node"',
        ),
        "klog structured",
        "EvictionFailed",
    ),
    _s(
        "kubelet",
        klog(
            "E",
            "kubelet.go:1335",
            '"Image garbage collection failed multiple times '
            'in a row" err="invalid capacity 0 on image filesystem"',
        ),
        "klog structured",
        "ImageGCFailed",
        "InvalidImageFsCapacity",
    ),
    _s(
        "kubelet",
        klog(
            "E",
            "kubelet.go:1476",
            '"Image garbage collection failed multiple times '
            'in a row" err="Failed to garbage collect required amount of images. Attempted to free '
            '2147483648 bytes, but only found 0 bytes eligible to free."',
        ),
        "klog structured",
        "ImageGCFailed",
        "ImageGCCannotFreeSpace",
    ),
    _s(
        "kubelet",
        klog(
            "E",
            "container_log_manager.go:263",
            '"Failed to rotate log for container" '
            f'err="failed to rotate log \\"{POD_LOG}\\": '
            f'failed to reopen container log \\"{CID}\\": '
            "rpc error: code = Unknown desc = failed to create and open log file: no space left on "
            f'device" worker=1 containerID="{CID}" path="{POD_LOG}" currentSize=10490011 '
            "maxSize=10485760",
        ),
        "klog structured",
        "ContainerLogRotateFailed",
        "NoSpaceLeftOnDevice",
    ),
    _s(
        "kubelet",
        klog(
            "E",
            "container_log_manager.go:210",
            '"Failed to rotate container logs" '
            'err="failed to list containers: rpc error: code = Unavailable desc = '
            'connection error"',
        ),
        "klog structured",
        "ContainerLogRotateFailed",
    ),
    # kubelet, before structured logging (klog Infof/Errorf)
    _s(
        "kubelet",
        klog(
            "W",
            "eviction_manager.go:344",
            "eviction manager: attempting to reclaim ephemeral-storage",
        ),
        "klog unstructured",
        "EvictionPressure",
    ),
    _s(
        "kubelet",
        klog(
            "I", "eviction_manager.go:362", "eviction manager: must evict pod(s) to reclaim inodes"
        ),
        "klog unstructured",
        "EvictingPods",
    ),
    _s(
        "kubelet",
        klog(
            "E",
            "kubelet.go:1302",
            "Image garbage collection failed multiple times in "
            "a row: failed to garbage collect required amount of images. Wanted to free 966184140 "
            "bytes, but freed 0 bytes",
            pid=1114,
        ),
        "klog unstructured",
        "ImageGCFailed",
        "ImageGCCannotFreeSpace",
    ),
    _s(
        "kubelet",
        klog(
            "E",
            "container_log_manager.go:243",
            f'Failed to rotate log "{POD_LOG}" for '
            f'container "{CID}": failed to compress log "{POD_LOG}.20251130-081403": write '
            f"{POD_LOG}.20251130-081403.gz.tmp: no space left on device",
        ),
        "klog unstructured",
        "ContainerLogRotateFailed",
        "NoSpaceLeftOnDevice",
    ),
    # containerd (logrus)
    _s(
        "containerd",
        logrus(
            "error",
            f'ReopenContainerLog for "{CID}" failed',
            error="rpc error: code = Unknown desc = failed to create and open log file: open "
            f"{POD_LOG}: no space left on device",
        ),
        "logrus",
        "ReopenContainerLogFailed",
        "NoSpaceLeftOnDevice",
    ),
    _s(
        "containerd",
        logrus("error", 'PullImage "docker.io/library/nginx:1.25" failed', error=ENOSPC_PULL),
        "logrus",
        "NoSpaceLeftOnDevice",
    ),
    # dockerd (logrus)
    _s(
        "dockerd",
        logrus(
            "error",
            "Error writing log message",
            driver="json-file",
            error=f"write /var/lib/docker/containers/{CID}/{CID}-json.log: no space left on device",
            message="GET /healthz 200",
        ),
        "logrus",
        "DockerLogWriteFailed",
        "NoSpaceLeftOnDevice",
    ),
    _s(
        "dockerd",
        logrus(
            "error",
            f'Failed to log msg "GET /healthz 200" for logger json-file: '
            f"write /var/lib/docker/containers/{CID}/{CID}-json.log: no space left on device",
        ),
        "logrus (Docker 20.10)",
        "DockerLogWriteFailed",
        "NoSpaceLeftOnDevice",
    ),
    _s(
        "dockerd",
        logrus(
            "warning",
            "Error rotating log file, log data may have been lost",
            error=f"open /var/lib/docker/containers/{CID}/{CID}-json.log: no space left on device",
        ),
        "logrus",
        "DockerLogRotateFailed",
        "NoSpaceLeftOnDevice",
    ),
    _s(
        "dockerd",
        logrus(
            "error",
            "Handler for POST /v1.41/images/create returned error: failed "
            "to register layer: Error processing tar file(exit status 1): write "
            "/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1: no space left on device",
        ),
        "logrus",
        "NoSpaceLeftOnDevice",
    ),
    # cri-o's conmon (syslog)
    _s("conmon", conmon("nwarn", "write_k8s_log failed"), "conmon syslog", "ConmonLogWriteFailed"),
    _s(
        "conmon",
        conmon("nwarn", "Failed to rotate log file: No space left on device"),
        "conmon syslog",
        "ConmonLogRotateFailed",
        "NoSpaceLeftOnDevice",
    ),
    # kernel
    _s(
        "kernel",
        "EXT4-fs error (device sda1): ext4_journal_check_start:83: comm kworker/u4:2: "
        "Detected aborted journal",
        "printk",
        "Ext4Error",
    ),
    _s("kernel", "EXT4-fs (sda1): Remounting filesystem read-only", "printk", "ReadonlyFilesystem"),
    _s(
        "kernel",
        "XFS (dm-0): Log I/O Error (0x2) detected at xlog_ioend_work+0x71/0x80 [xfs] "
        "(fs/xfs/xfs_log.c:1378).  Shutting down filesystem.",
        "printk",
        "XfsShutdown",
    ),
    _s(
        "kernel",
        "XFS (dm-0): Filesystem has been shut down due to log error (0x2).",
        "printk",
        "XfsShutdown",
    ),
    _s(
        "kernel",
        "Buffer I/O error on dev sdb1, logical block 0, async page read",
        "printk",
        "BufferIOError",
    ),
    # near misses: the same components' ordinary or unrelated lines
    _s(
        "kubelet",
        klog(
            "I",
            "eviction_manager.go:366",
            '"Eviction manager: attempting to reclaim" resourceName="memory"',
        ),
        "klog structured",
    ),
    _s(
        "kubelet",
        klog(
            "E",
            "kubelet.go:1338",
            '"Image garbage collection failed once. Stats '
            'initialization may not have completed yet" err="failed to get imageFs info: unable to '
            'find data in memory cache"',
        ),
        "klog structured",
    ),
    _s(
        "kubelet",
        klog(
            "I",
            "kubelet.go:2400",
            '"SyncLoop (PLEG): event for pod" '
            'pod="kube-system/coredns-5d78c9869d-x2x7v" '
            'event={"ID":"0f1c","Type":"ContainerStarted"}',
        ),
        "klog structured",
    ),
    _s(
        "containerd",
        logrus("info", f'ReopenContainerLog for "{CID}" returns successfully'),
        "logrus",
    ),
    _s("conmon", conmon("ninfo", "attach sock path: /var/run/crio/4b3c/attach"), "conmon syslog"),
    _s(
        "kernel",
        "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
        "printk",
    ),
    _s("kernel", "XFS (sda2): Mounting V5 Filesystem", "printk"),
)

UNITS = {
    "kubelet": ("kubelet.service", "kubelet"),
    "containerd": ("containerd.service", "containerd"),
    "dockerd": ("docker.service", "dockerd"),
    "conmon": (f"crio-conmon-{CID}.scope", "conmon"),
}
