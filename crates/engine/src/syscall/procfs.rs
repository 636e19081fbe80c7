//! The guest's view of its own `/proc/<pid>` (and of `/dev/fd`).
//!
//! The host's `/proc/self` describes vmjit: its descriptors, its memory, its mappings.
//! Paths into it are classified here, lexically, before the host sees them:
//! - `fd/N`, `fdinfo/N` (and `/dev/fd/N`, `/dev/stdin`...) name guest descriptor N:
//!   they are rewritten to the host descriptor behind it, or are ENOENT when N is not
//!   open; `fd/` and `fdinfo/` list the guest's table;
//! - `exe` is the guest program; `maps`, `cmdline` and `environ` are synthesised from
//!   the guest's state;
//! - `mem`, `pagemap`, `map_files/` (host memory and the files behind host mappings,
//!   among them the code cache's) and `smaps`, `smaps_rollup`, `numa_maps` (host
//!   mappings) cannot be opened (EACCES).
//!
//! This is the convenient half of the promise: a guest that asks plainly gets the answer
//! Linux would give about the guest. The secure half does not depend on spelling:
//! `sandbox::check_opened` examines every descriptor the guest opens, so a symlink to
//! `/proc/self/fd/N` or any other detour still cannot reach vmjit's own files.
//!
//! **Invariant.** The classification is lexical (`.` and `..` folded, repeated `/`
//! ignored), which is exact for `/proc`: `/proc/self` is a symlink to `/proc/<pid>`,
//! whose `..` is `/proc` again, so folding cannot leave the directory it names.

/// A synthesised file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Synthetic {
    Maps,
    Cmdline,
    Environ,
}

/// What a path names, as far as vmjit's `/proc` entries go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ProcPath {
    /// Not one of vmjit's own entries: the host resolves the guest's path as it is.
    Plain,
    /// The host path to use instead (absolute). `dir` is the normalised guest path,
    /// kept on a descriptor opened from it so that relative paths resolve here too.
    Host { path: Vec<u8>, dir: Vec<u8> },
    /// The guest's descriptor directory (`fd`, or `fdinfo` when `info`); `path` is the
    /// host directory that backs it (for stat and the like).
    FdDir { info: bool, path: Vec<u8> },
    /// A file vmjit synthesises; `path` is the host file for stat and the like.
    Synthetic { what: Synthetic, path: Vec<u8> },
    /// The guest executable.
    Exe,
    /// Opening is refused with this errno; other calls (stat, readlink) see `path`.
    Refused { errno: i32, path: Vec<u8> },
    /// A descriptor entry for a guest descriptor that is not open.
    NoSuchFd,
}

/// How many times `/proc/self/root/...` may restart the classification.
const MAX_ROOT_HOPS: usize = 8;

/// What the classifier needs to know about the process.
pub(super) struct ProcessView<'a> {
    /// The host process id (what the guest sees as its pid).
    pub pid: i64,
    /// True when this decimal string names one of vmjit's own threads.
    pub is_own_thread: &'a dyn Fn(&[u8]) -> bool,
    /// The host descriptor of guest descriptor `n`, if it is open.
    pub host_fd: &'a dyn Fn(i32) -> Option<i32>,
}

fn is_num(s: &[u8]) -> bool {
    !s.is_empty() && s.len() <= 10 && s.iter().all(u8::is_ascii_digit)
}

fn num(s: &[u8]) -> Option<i64> {
    if !is_num(s) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// The components of an absolute path after folding `.`, `..` and repeated `/`.
pub(super) fn normalize(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut p = Vec::new();
    for c in parts {
        p.push(b'/');
        p.extend_from_slice(c);
    }
    if p.is_empty() {
        p.push(b'/');
    }
    p
}

/// Classifies an absolute guest path (`abs` starts with `/`).
pub(super) fn classify(abs: &[u8], view: &ProcessView<'_>) -> ProcPath {
    let mut owned: Vec<Vec<u8>> = normalize(abs).into_iter().map(<[u8]>::to_vec).collect();
    for _ in 0..MAX_ROOT_HOPS {
        let parts: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        match classify_parts(&parts, view) {
            Step::Done(p) => return p,
            Step::Restart(rest) => owned = rest,
        }
    }
    ProcPath::Refused {
        errno: libc::ELOOP,
        path: abs.to_vec(),
    }
}

enum Step {
    Done(ProcPath),
    /// `/proc/self/root/<rest>`: classify `/<rest>` again.
    Restart(Vec<Vec<u8>>),
}

fn classify_parts(parts: &[&[u8]], view: &ProcessView<'_>) -> Step {
    // /dev/fd/N..., /dev/stdin|stdout|stderr are symlinks into /proc/self/fd.
    let fd_link: Option<Vec<&[u8]>> = match parts {
        [b"dev", b"fd", rest @ ..] => {
            Some([&[b"proc" as &[u8], b"self", b"fd"][..], rest].concat())
        }
        [b"dev", b"stdin", rest @ ..] => {
            Some([&[b"proc" as &[u8], b"self", b"fd", b"0"][..], rest].concat())
        }
        [b"dev", b"stdout", rest @ ..] => {
            Some([&[b"proc" as &[u8], b"self", b"fd", b"1"][..], rest].concat())
        }
        [b"dev", b"stderr", rest @ ..] => {
            Some([&[b"proc" as &[u8], b"self", b"fd", b"2"][..], rest].concat())
        }
        _ => None,
    };
    let parts: &[&[u8]] = match &fd_link {
        Some(v) => v,
        None => parts,
    };
    let [b"proc", who, rest @ ..] = parts else {
        return Step::Done(ProcPath::Plain);
    };
    let pid = view.pid.to_string();
    let own = match *who {
        b"self" | b"thread-self" => true,
        w => w == pid.as_bytes() || (is_num(w) && (view.is_own_thread)(w)),
    };
    if !own {
        // Another process's memory would be a way into a vmjit process too (a forked
        // guest's, say): refused whatever the process.
        let leaf = match rest {
            [leaf] => Some(*leaf),
            [b"task", tid, leaf] if is_num(tid) => Some(*leaf),
            _ => None,
        };
        if is_num(who) && matches!(leaf, Some(b"mem" | b"pagemap")) {
            return Step::Done(ProcPath::Refused {
                errno: libc::EACCES,
                path: join(parts),
            });
        }
        return Step::Done(ProcPath::Plain);
    }
    // The host directory for this process (or thread) and what follows it.
    let mut host: Vec<&[u8]> = vec![b"proc", who];
    let mut rest = rest;
    if let [b"task", tid, more @ ..] = rest
        && is_num(tid)
    {
        host.extend_from_slice(&[b"task", tid]);
        rest = more;
    }
    let host_path = |extra: &[&[u8]]| join(&[&host[..], extra].concat());
    let guest_dir = join(parts);
    Step::Done(match rest {
        [] => ProcPath::Host {
            path: host_path(&[]),
            dir: guest_dir,
        },
        [b"fd"] => ProcPath::FdDir {
            info: false,
            path: host_path(&[b"fd"]),
        },
        [b"fdinfo"] => ProcPath::FdDir {
            info: true,
            path: host_path(&[b"fdinfo"]),
        },
        [dir @ (b"fd" | b"fdinfo"), n, more @ ..] => {
            match num(n)
                .and_then(|n| i32::try_from(n).ok())
                .and_then(view.host_fd)
            {
                Some(h) => {
                    let h = h.to_string();
                    let mut extra: Vec<&[u8]> = vec![dir, h.as_bytes()];
                    extra.extend_from_slice(more);
                    ProcPath::Host {
                        path: host_path(&extra),
                        dir: guest_dir,
                    }
                }
                None => ProcPath::NoSuchFd,
            }
        }
        [b"exe"] => ProcPath::Exe,
        [b"maps"] => ProcPath::Synthetic {
            what: Synthetic::Maps,
            path: host_path(&[b"maps"]),
        },
        [b"cmdline"] => ProcPath::Synthetic {
            what: Synthetic::Cmdline,
            path: host_path(&[b"cmdline"]),
        },
        [b"environ"] => ProcPath::Synthetic {
            what: Synthetic::Environ,
            path: host_path(&[b"environ"]),
        },
        [b"mem" | b"pagemap" | b"smaps" | b"smaps_rollup" | b"numa_maps"] | [b"map_files", ..] => {
            ProcPath::Refused {
                errno: libc::EACCES,
                path: host_path(rest),
            }
        }
        [b"root", more @ ..] => {
            return Step::Restart(more.iter().map(|c| c.to_vec()).collect());
        }
        _ => ProcPath::Host {
            path: host_path(rest),
            dir: guest_dir,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view_with<'a>(
        own: &'a dyn Fn(&[u8]) -> bool,
        fds: &'a dyn Fn(i32) -> Option<i32>,
    ) -> ProcessView<'a> {
        ProcessView {
            pid: 4242,
            is_own_thread: own,
            host_fd: fds,
        }
    }

    fn c(path: &str) -> ProcPath {
        let own = |t: &[u8]| t == b"4243";
        let fds = |g: i32| match g {
            0..=2 => Some(g),
            3 => Some(7),
            _ => None,
        };
        classify(path.as_bytes(), &view_with(&own, &fds))
    }

    fn host(p: &str) -> Vec<u8> {
        p.as_bytes().to_vec()
    }

    #[test]
    fn descriptor_links_name_the_guests_descriptors() {
        for p in [
            "/proc/self/fd/3",
            "/proc/4242/fd/3",
            "/proc/thread-self/fd/3",
            "/dev/fd/3",
        ] {
            match c(p) {
                ProcPath::Host { path, .. } => assert!(path.ends_with(b"/fd/7"), "{p}"),
                other => panic!("{p}: {other:?}"),
            }
        }
        assert_eq!(c("/proc/self/fd/4"), ProcPath::NoSuchFd);
        assert_eq!(c("/proc/self/fdinfo/99"), ProcPath::NoSuchFd);
        assert_eq!(c("/dev/fd/99999999999"), ProcPath::NoSuchFd);
        match c("/dev/stdout") {
            ProcPath::Host { path, .. } => assert_eq!(path, host("/proc/self/fd/1")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c("/proc/self/fd"),
            ProcPath::FdDir { info: false, .. }
        ));
        assert!(matches!(
            c("/proc/self/fdinfo/"),
            ProcPath::FdDir { info: true, .. }
        ));
    }

    #[test]
    fn host_memory_and_mappings_are_refused_in_every_spelling() {
        for p in [
            "/proc/self/mem",
            "/proc//self/./mem",
            "/proc/self/../self/mem",
            "/proc/4242/task/4243/mem",
            "/proc/4243/mem",
            "/proc/self/map_files/7f00-7f01",
            "/proc/self/map_files",
            "/proc/self/pagemap",
            "/proc/self/root/proc/self/mem",
            "/proc/self/smaps",
            "/proc/1/mem",
            "/proc/1/task/1/mem",
        ] {
            assert!(
                matches!(
                    c(p),
                    ProcPath::Refused {
                        errno: libc::EACCES,
                        ..
                    }
                ),
                "{p}: {:?}",
                c(p)
            );
        }
    }

    #[test]
    fn other_paths_pass_or_map_to_the_host_process_directory() {
        assert_eq!(c("/etc/passwd"), ProcPath::Plain);
        assert_eq!(c("/proc/1/status"), ProcPath::Plain);
        assert_eq!(c("/proc/cpuinfo"), ProcPath::Plain);
        assert_eq!(c("/proc/self/exe"), ProcPath::Exe);
        assert!(matches!(
            c("/proc/self/maps"),
            ProcPath::Synthetic {
                what: Synthetic::Maps,
                ..
            }
        ));
        match c("/proc/self/status") {
            ProcPath::Host { path, dir } => {
                assert_eq!(path, host("/proc/self/status"));
                assert_eq!(dir, host("/proc/self/status"));
            }
            other => panic!("{other:?}"),
        }
        match c("/proc/self/root/etc/passwd") {
            ProcPath::Plain => {}
            other => panic!("{other:?}"),
        }
    }
}
