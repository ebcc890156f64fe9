//! Whether a loopback port is taken, and by which process: what a person needs to hear
//! when an instance could not listen on the port it was given. The listening sockets
//! come from `/proc/net/tcp{,6}`, their owners from the socket inodes in `/proc/*/fd`.

use std::fs;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, TcpListener};

/// A process that holds a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Holder {
    pub pid: i32,
    /// Its command name, from `/proc/<pid>/comm`.
    pub name: String,
}

/// Whether binding `127.0.0.1:port` fails because something else has it.
pub(crate) fn is_taken(port: u16) -> bool {
    matches!(
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)),
        Err(error) if error.kind() == ErrorKind::AddrInUse
    )
}

/// The process listening on `port` (any address), if one of this user's processes does.
pub(crate) fn holder(port: u16) -> Option<Holder> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .find(|pid| {
            fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    fs::read_link(fd.path())
                        .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
                })
            })
        })
        .map(|pid| Holder {
            pid,
            name: fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|name| name.trim().to_owned())
                .unwrap_or_else(|_| "?".to_owned()),
        })
}

/// The inodes of the sockets listening on `port` in one `/proc/net/tcp` table: lines of
/// `sl local_address rem_address st ... inode`, the address as `HEX_IP:HEX_PORT`, the
/// state `0A` for LISTEN.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit(':').next()?;
            let listening = *fields.get(3)? == "0A";
            let matches = u16::from_str_radix(local_port, 16).ok()? == port;
            (listening && matches).then(|| fields.get(9)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listening_sockets_of_a_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0\n\
           1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1\n\
           2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8080), [4242]);
        assert_eq!(listening_inodes(table, 80), [4444]);
        assert!(listening_inodes(table, 9999).is_empty());
    }

    #[test]
    fn finds_the_process_that_holds_a_port() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("a port");
        let port = listener.local_addr().expect("its address").port();
        assert!(is_taken(port));
        let holder = holder(port).expect("the holder");
        assert_eq!(holder.pid, std::process::id() as i32);
        drop(listener);
        assert!(!is_taken(port));
        assert_eq!(self::holder(port), None);
    }
}
