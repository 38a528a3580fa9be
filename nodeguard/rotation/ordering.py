"""Whether one fsync also makes every earlier metadata change on its filesystem durable.

fsutil.ORDERED_FS names ext4 and xfs by their statfs magic. That holds for xfs (its log
is forced in order) and for ext4 with a journal (jbd2 commits transactions in order),
but not for ext4 without one (``mkfs.ext4 -O ^has_journal``, or ext2/ext3 mounted by
the ext4 driver, which share the magic): there fsync writes back the file's inode and
its new entry's folder, and no other inode, bitmap or folder. So ext4 counts as ordered
only when the kernel says it runs a journal for it (``/sys/fs/ext4/DEV/journal_task``
is the jbd2 thread, ``<none>`` without a journal); unknown counts as unordered.
"""

from __future__ import annotations

import os

from nodeguard import fsutil

EXT4_MAGIC = 0xEF53
XFS_MAGIC = 0x58465342
SYSFS = "/sys"
PROC = "/proc"


def fsync_orders(fd: int) -> bool:
    """Whether an fsync on ``fd``'s filesystem persists every metadata change made there
    before it (renames, creates, owners, modes), not just the synced file's own."""
    kind = fsutil.fs_type(fd)
    if kind == XFS_MAGIC:
        return True
    return kind == EXT4_MAGIC and ext4_journaled(os.fstat(fd).st_dev)


def ext4_journaled(dev: int) -> bool:
    """Whether the ext4 filesystem on device ``dev`` runs a journal (False if unknown).

    ``journal_task`` exists since Linux 5.x; before it, jbd2's own /proc folder for the
    device's internal journal (inode 8) tells. Looked up each time, not cached: a loop
    or device-mapper number is reused by the next filesystem mounted on it.
    """
    try:
        block = os.path.basename(os.readlink(f"{SYSFS}/dev/block/{os.major(dev)}:{os.minor(dev)}"))
    except OSError:
        return False
    try:
        with open(f"{SYSFS}/fs/ext4/{block}/journal_task", encoding="ascii") as handle:
            return handle.read(64).strip().isdigit()
    except FileNotFoundError:
        return os.path.isdir(f"{PROC}/fs/jbd2/{block}-8")
    except (OSError, ValueError):
        return False
