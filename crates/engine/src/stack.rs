//! The initial stack of a new process, laid out as Linux's `create_elf_tables` does.
//!
//! From `sp` upwards: `argc`, `argv[0..argc]`, NULL, `envp[..]`, NULL, auxv pairs ending
//! with `AT_NULL`; above them the 16 AT_RANDOM bytes, a copy of the program headers when
//! they are not inside a loaded segment, and the strings (argv, envp, then the
//! AT_EXECFN name at the very top). `sp` is 16-byte aligned.
//!
//! **Invariant.** Everything written lies inside the stack mapping
//! `[top - layout::STACK_SIZE, top)`; too much argument data is an error, never a
//! write outside it.

use crate::layout;
use crate::memory::GuestMemory;

/// Auxiliary-vector keys (`<linux/auxvec.h>`, the same on every architecture).
pub mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const EXECFN: u64 = 31;
}

/// AT_HWCAP of an RV64IMAFDC hart: one bit per single-letter extension.
pub const HWCAP_RV64IMAFDC: u64 = {
    const fn bit(c: u8) -> u64 {
        1 << (c - b'A')
    }
    bit(b'I') | bit(b'M') | bit(b'A') | bit(b'F') | bit(b'D') | bit(b'C')
};

/// Why the stack could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StackError {
    #[error("the arguments and environment are too large for the guest stack")]
    TooLarge,
    #[error("an argument or environment string contains a NUL byte")]
    Nul,
}

/// Process facts that go into the auxiliary vector. The entries and their order are
/// qemu-riscv64's (7.2): AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS,
/// AT_ENTRY, AT_UID, AT_EUID, AT_GID, AT_EGID, AT_HWCAP, AT_CLKTCK, AT_RANDOM,
/// AT_SECURE, AT_EXECFN; like qemu, no AT_PLATFORM, AT_HWCAP2 or AT_SYSINFO_EHDR (there
/// is no vDSO). glibc's ld.so needs AT_PHDR/PHNUM (the program's headers, to find its
/// dynamic section), AT_BASE (to relocate itself), AT_ENTRY (where to go when done),
/// AT_RANDOM (the stack protector and pointer guard), AT_SECURE and AT_PAGESZ.
#[derive(Debug, Clone)]
pub struct AuxInfo {
    /// AT_PHDR (None: copy `phdr_bytes` onto the stack and point there).
    pub phdr: Option<u64>,
    pub phdr_bytes: Vec<u8>,
    pub phent: u64,
    pub phnum: u64,
    /// AT_ENTRY: the program's entry point (not the interpreter's).
    pub entry: u64,
    /// AT_BASE: the ELF interpreter's load address, 0 without one.
    pub base: u64,
    pub uid: u64,
    pub euid: u64,
    pub gid: u64,
    pub egid: u64,
    pub random: [u8; 16],
}

/// Where things landed (for tests and `--trace`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialStack {
    /// The initial stack pointer (16-byte aligned).
    pub sp: u64,
    /// The auxiliary vector as written (key, value), without the final AT_NULL.
    pub auxv: Vec<(u64, u64)>,
}

/// Writes the initial stack below `top` (the stack mapping must already exist).
/// `argv[0]` is the program name as the guest sees it; `execfn` is AT_EXECFN.
pub fn build(
    mem: &mut GuestMemory,
    top: u64,
    argv: &[&[u8]],
    envp: &[&[u8]],
    execfn: &[u8],
    aux: &AuxInfo,
) -> Result<InitialStack, StackError> {
    if argv
        .iter()
        .chain(envp)
        .chain([&execfn])
        .any(|s| s.contains(&0))
    {
        return Err(StackError::Nul);
    }
    // Linux refuses more than a quarter of the stack limit for strings and pointers.
    let limit = top.saturating_sub(layout::STACK_SIZE / 4);
    let mut cur = top.saturating_sub(16);
    let mut push = |mem: &mut GuestMemory, bytes: &[u8], align: u64| -> Result<u64, StackError> {
        let len = bytes.len() as u64;
        let at = cur.checked_sub(len).ok_or(StackError::TooLarge)? & !(align - 1);
        if at < limit {
            return Err(StackError::TooLarge);
        }
        mem.write_bytes_privileged(at, bytes)
            .map_err(|_| StackError::TooLarge)?;
        cur = at;
        Ok(at)
    };
    let with_nul = |s: &[u8]| {
        let mut v = s.to_vec();
        v.push(0);
        v
    };
    let execfn_addr = push(mem, &with_nul(execfn), 1)?;
    let mut env_addrs = Vec::with_capacity(envp.len());
    for s in envp.iter().rev() {
        env_addrs.push(push(mem, &with_nul(s), 1)?);
    }
    env_addrs.reverse();
    let mut arg_addrs = Vec::with_capacity(argv.len());
    for s in argv.iter().rev() {
        arg_addrs.push(push(mem, &with_nul(s), 1)?);
    }
    arg_addrs.reverse();
    let random_addr = push(mem, &aux.random, 16)?;
    let phdr = match aux.phdr {
        Some(p) => p,
        None => push(mem, &aux.phdr_bytes, 8)?,
    };

    let auxv = vec![
        (at::PHDR, phdr),
        (at::PHENT, aux.phent),
        (at::PHNUM, aux.phnum),
        (at::PAGESZ, crate::memory::PAGE_SIZE),
        (at::BASE, aux.base),
        (at::FLAGS, 0),
        (at::ENTRY, aux.entry),
        (at::UID, aux.uid),
        (at::EUID, aux.euid),
        (at::GID, aux.gid),
        (at::EGID, aux.egid),
        (at::HWCAP, HWCAP_RV64IMAFDC),
        (at::CLKTCK, 100),
        (at::RANDOM, random_addr),
        (at::SECURE, 0),
        (at::EXECFN, execfn_addr),
    ];
    let mut words: Vec<u64> = Vec::new();
    words.push(argv.len() as u64);
    words.extend(&arg_addrs);
    words.push(0);
    words.extend(&env_addrs);
    words.push(0);
    for &(k, v) in &auxv {
        words.push(k);
        words.push(v);
    }
    words.push(at::NULL);
    words.push(0);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let sp = push(mem, &bytes, 16)?;
    Ok(InitialStack { sp, auxv })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{PERM_R, PERM_W};
    use rv64::Memory;

    fn setup() -> (GuestMemory, u64) {
        let m = GuestMemory::new().unwrap();
        let top = layout::STACK_TOP;
        m.map(
            top - layout::STACK_SIZE,
            layout::STACK_SIZE,
            PERM_R | PERM_W,
        )
        .unwrap();
        (m, top)
    }

    fn aux() -> AuxInfo {
        AuxInfo {
            phdr: Some(0x10040),
            phdr_bytes: vec![],
            phent: 56,
            phnum: 3,
            entry: 0x10078,
            base: 0x2_0000_0000,
            uid: 1,
            euid: 2,
            gid: 3,
            egid: 4,
            random: *b"0123456789abcdef",
        }
    }

    fn cstr(m: &GuestMemory, a: u64) -> Vec<u8> {
        m.read_cstr(a, 4096).unwrap()
    }

    #[test]
    fn stack_holds_argc_argv_envp_and_auxv_in_linux_order() {
        let (mut m, top) = setup();
        let st = build(
            &mut m,
            top,
            &[b"prog", b"-x", b""],
            &[b"A=1", b"VMJIT_GUEST=1"],
            b"/p/prog",
            &aux(),
        )
        .unwrap();
        let sp = st.sp;
        assert_eq!(sp % 16, 0);
        assert_eq!(m.load64(sp), Ok(3));
        assert_eq!(cstr(&m, m.load64(sp + 8).unwrap()), b"prog");
        assert_eq!(cstr(&m, m.load64(sp + 16).unwrap()), b"-x");
        assert_eq!(cstr(&m, m.load64(sp + 24).unwrap()), b"");
        assert_eq!(m.load64(sp + 32), Ok(0));
        assert_eq!(cstr(&m, m.load64(sp + 40).unwrap()), b"A=1");
        assert_eq!(cstr(&m, m.load64(sp + 48).unwrap()), b"VMJIT_GUEST=1");
        assert_eq!(m.load64(sp + 56), Ok(0));
        let mut a = sp + 64;
        let mut seen = std::collections::HashMap::new();
        loop {
            let k = m.load64(a).unwrap();
            let v = m.load64(a + 8).unwrap();
            a += 16;
            if k == at::NULL {
                break;
            }
            seen.insert(k, v);
        }
        assert_eq!(seen[&at::PHDR], 0x10040);
        assert_eq!(seen[&at::PHNUM], 3);
        assert_eq!(seen[&at::PAGESZ], 4096);
        assert_eq!(seen[&at::ENTRY], 0x10078);
        assert_eq!(seen[&at::BASE], 0x2_0000_0000);
        assert_eq!(seen[&at::SECURE], 0);
        assert_eq!(seen[&at::EGID], 4);
        assert_eq!(seen[&at::CLKTCK], 100);
        assert_eq!(seen[&at::HWCAP], 0x112d);
        assert_eq!(cstr(&m, seen[&at::EXECFN]), b"/p/prog");
        let mut r = [0u8; 16];
        m.read_bytes(seen[&at::RANDOM], &mut r).unwrap();
        assert_eq!(&r, b"0123456789abcdef");
        assert!(a <= top);
    }

    #[test]
    fn auxv_has_the_entries_of_qemu_riscv64_in_its_order() {
        // `LD_SHOW_AUXV=1 qemu-riscv64 -L /usr/riscv64-linux-gnu <a dynamic program>`.
        let (mut m, top) = setup();
        let st = build(&mut m, top, &[b"p"], &[], b"p", &aux()).unwrap();
        let keys: Vec<u64> = st.auxv.iter().map(|&(k, _)| k).collect();
        use at::*;
        assert_eq!(
            keys,
            [
                PHDR, PHENT, PHNUM, PAGESZ, BASE, FLAGS, ENTRY, UID, EUID, GID, EGID, HWCAP,
                CLKTCK, RANDOM, SECURE, EXECFN
            ]
        );
    }

    #[test]
    fn program_headers_outside_segments_are_copied_to_the_stack() {
        let (mut m, top) = setup();
        let mut a = aux();
        a.phdr = None;
        a.phdr_bytes = vec![7u8; 112];
        let st = build(&mut m, top, &[b"p"], &[], b"p", &a).unwrap();
        let phdr = st.auxv.iter().find(|(k, _)| *k == at::PHDR).unwrap().1;
        let mut buf = [0u8; 112];
        m.read_bytes(phdr, &mut buf).unwrap();
        assert_eq!(buf, [7u8; 112]);
        assert_eq!(phdr % 8, 0);
    }

    #[test]
    fn oversized_arguments_are_an_error_not_an_overflow() {
        let (mut m, top) = setup();
        let big = vec![b'x'; 1 << 20];
        let args: Vec<&[u8]> = vec![&big; 3];
        assert_eq!(
            build(&mut m, top, &args, &[], b"p", &aux()),
            Err(StackError::TooLarge)
        );
        assert_eq!(
            build(&mut m, top, &[b"a\0b"], &[], b"p", &aux()),
            Err(StackError::Nul)
        );
    }
}
