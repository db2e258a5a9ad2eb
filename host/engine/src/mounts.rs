//! Which filesystem a device number belongs to, from the kernel's own
//! table (`/proc/self/mountinfo`): a backup needs the type to leave pseudo
//! filesystems (`proc`, `sysfs`, `devtmpfs`…) out, and `statfs` cannot tell
//! `devtmpfs` from a `tmpfs` that holds real files.

use crate::source::Mount;

/// The mount of the filesystem on `device` (`st_dev`), its type empty when
/// the table cannot be read or does not list it.
pub fn mount_of(device: u64) -> Mount {
    let fs_type = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|table| type_in_table(&table, device))
        .unwrap_or_default();
    Mount { fs_type }
}

/// glibc's `major`/`minor` split of a device number.
fn major_minor(device: u64) -> (u64, u64) {
    let major = ((device >> 8) & 0xfff) | ((device >> 32) & !0xfff);
    let minor = (device & 0xff) | ((device >> 12) & !0xff);
    (major, minor)
}

/// Finds `device` in a mountinfo table: field 3 is `major:minor`, and the
/// type follows the ` - ` separator.
fn type_in_table(table: &str, device: u64) -> Option<String> {
    let (major, minor) = major_minor(device);
    let wanted = format!("{major}:{minor}");
    table.lines().find_map(|line| {
        let (fields, after) = line.split_once(" - ")?;
        (fields.split(' ').nth(2)? == wanted)
            .then(|| after.split(' ').next().unwrap_or("").to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_is_found_by_its_major_and_minor() {
        let table = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                     23 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n";
        // 259:2 as glibc's makedev packs it.
        let device = (259 << 8) | 2;
        assert_eq!(type_in_table(table, device).as_deref(), Some("ext4"));
        assert_eq!(type_in_table(table, 21).as_deref(), Some("proc"));
        assert_eq!(type_in_table(table, 99), None);
    }

    #[test]
    fn this_machines_proc_is_a_pseudo_filesystem() {
        use std::os::unix::fs::MetadataExt;
        let Ok(proc) = std::fs::metadata("/proc/self") else {
            return;
        };
        assert!(mount_of(proc.dev()).is_pseudo());
    }
}
