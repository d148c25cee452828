//! What the daemon creates for others to connect to (the control socket,
//! the vhost-user sockets and their directories) gets an explicit mode and
//! group, whatever umask it was started under: under umask 000 they were
//! world-writable, and any local user could reconfigure the switch or
//! connect to a VM's socket as its guest.
use std::fs::{DirBuilder, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// A socket others use: read-write for the daemon's user and the group.
pub const SOCKET_MODE: u32 = 0o660;
/// A directory only the daemon writes, the group may enter.
pub const DIR_PRIVATE: u32 = 0o750;
/// A directory the group writes too (QEMU creates the sockets of
/// `dpdkvhostuserclient` ports in it).
pub const DIR_SHARED: u32 = 0o770;

/// Creates `dir` (parents 0755, as `mkdir -p` under umask 022) and sets its
/// mode and group, also when it existed.
pub fn own_dir(dir: &Path, mode: u32, gid: Option<u32>) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    std::os::unix::fs::chown(dir, None, gid)?;
    std::fs::set_permissions(dir, Permissions::from_mode(mode))
}

/// Creates the parent directories of a path the daemon creates, without
/// touching one that exists (a socket in `/run` leaves `/run` alone).
pub fn parent_dirs(path: &Path, mode: u32, gid: Option<u32>) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => own_dir(dir, mode, gid),
        _ => Ok(()),
    }
}

/// Gives a socket the daemon bound its mode and group.
pub fn own_socket(path: &Path, gid: Option<u32>) -> io::Result<()> {
    std::os::unix::fs::chown(path, None, gid)?;
    std::fs::set_permissions(path, Permissions::from_mode(SOCKET_MODE))
}
