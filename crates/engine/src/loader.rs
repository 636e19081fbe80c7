//! ELF loading: validates riscv64 executables and ELF interpreters and maps their
//! segments into guest memory.
//!
//! **Invariants.** Every header field is validated before anything is mapped, and every
//! problem is reported as a typed [`ElfError`]; no input can make the loader panic (the
//! tests feed it mutated headers). Accepted: little-endian ELF64 for `EM_RISCV`, of type
//! `ET_EXEC` (loaded where its headers say) or `ET_DYN` (position independent: a main
//! program at [`PIE_BASE`], an interpreter at [`INTERP_BASE`] or, when the program
//! took that range, the highest free range that holds it). Segments must lie inside
//! the file, must not overlap each other, and must end below
//! [`crate::layout::MMAP_TOP`]; an interpreter's must not overlap the program's. A
//! program's `PT_INTERP` is returned, not followed: the caller finds the file (in the
//! sysroot) and loads it with [`load_interpreter`]. An interpreter with a `PT_INTERP` of
//! its own is refused.
//!
//! Mapping copies the segments' file contents into guest memory (as vmjit's file-backed
//! mmap does); pages past a segment's file size up to its memory size are zero (bss).

use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, LittleEndian as LE};

use crate::layout;
use crate::memory::{GuestMemory, PERM_R, PERM_W, PERM_X, page_ceil, page_floor};

// Offsets into `e_ident` (the System V gABI; `object` names only the values).
const EI_NIDENT: usize = 16;
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const EI_VERSION: usize = 6;

/// Where a position-independent main program (`ET_DYN`: static-pie, or a dynamically
/// linked PIE) is loaded: 1 GiB, so its program break and heap grow above it.
pub const PIE_BASE: u64 = 0x4000_0000;

/// Where a position-independent ELF interpreter (`ld-linux-riscv64-lp64d.so.1`) is
/// loaded (AT_BASE): 8 GiB, in the middle of the mmap area, which is allocated
/// top-down from [`layout::MMAP_TOP`] (about 16 GiB) and skips it, and far above any
/// program and its heap.
pub const INTERP_BASE: u64 = 0x2_0000_0000;

/// Lowest address an interpreter is moved to when its own base is taken (Linux's
/// default `vm.mmap_min_addr`).
const MIN_ADDR: u64 = 0x10000;

/// Longest `PT_INTERP` string, its NUL included (Linux's limit, `PATH_MAX`).
const INTERP_MAX: u64 = 4096;

/// Why an executable or interpreter cannot be loaded. The messages read after the
/// file's name (`vmjit: prog: <message>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("is not an ELF file")]
    NotElf,
    #[error("is a 32-bit ELF file; vmjit runs 64-bit riscv64 executables")]
    Elf32,
    #[error("is a big-endian ELF file; vmjit runs little-endian riscv64 executables")]
    BigEndian,
    #[error("is an ELF file for {machine}, not riscv64")]
    WrongMachine { machine: String },
    #[error("is an ELF file of type {0} (not an executable)")]
    NotExecutable(u16),
    #[error("is truncated: {0}")]
    Truncated(&'static str),
    #[error("has corrupt ELF headers: {0}")]
    Corrupt(String),
    #[error("has a malformed ELF interpreter name (PT_INTERP): {0}")]
    BadInterpName(&'static str),
    #[error("names an ELF interpreter of its own ({0}); an interpreter must not need one")]
    NestedInterp(String),
    #[error("has no loadable segment")]
    NoLoadableSegment,
    #[error("has program segment {index} lying outside the file")]
    SegmentOutsideFile { index: usize },
    #[error("has program segments {first} and {second} overlapping")]
    SegmentsOverlap { first: usize, second: usize },
    #[error("has program segment {index} lying outside the guest address space")]
    SegmentOutsideSpace { index: usize },
    #[error("has program segment {index} overlapping the program it is to run")]
    OverlapsProgram { index: usize },
}

/// What the loader found and mapped of a main program; input to the initial stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Entry point (load bias applied): AT_ENTRY, and where a program without
    /// interpreter starts.
    pub entry: u64,
    /// Guest address of the program headers (AT_PHDR), if they lie inside a loaded
    /// segment; otherwise the stack builder copies [`LoadedImage::phdr_bytes`].
    pub phdr: Option<u64>,
    /// The raw program header table (for a copy on the stack when `phdr` is `None`).
    pub phdr_bytes: Vec<u8>,
    /// Size of one program header (AT_PHENT).
    pub phent: u64,
    /// Number of program headers (AT_PHNUM).
    pub phnum: u64,
    /// Load bias: 0 for ET_EXEC, [`PIE_BASE`] for ET_DYN.
    pub bias: u64,
    /// Initial program break: the page after the highest loaded byte.
    pub brk: u64,
    /// The ELF interpreter the program names (`PT_INTERP`, without its NUL), if any.
    pub interp: Option<Vec<u8>>,
}

/// What the loader mapped of an ELF interpreter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadedInterp {
    /// Its entry point (load bias applied): where the process starts.
    pub entry: u64,
    /// Its load bias (AT_BASE): normally [`INTERP_BASE`] for ET_DYN (see
    /// [`load_interpreter`]), 0 for ET_EXEC.
    pub bias: u64,
}

fn machine_name(m: u16) -> String {
    match m {
        elf::EM_X86_64 => "x86-64".into(),
        elf::EM_386 => "i386".into(),
        elf::EM_AARCH64 => "aarch64".into(),
        elf::EM_ARM => "arm".into(),
        elf::EM_PPC64 => "ppc64".into(),
        elf::EM_S390 => "s390".into(),
        elf::EM_MIPS => "mips".into(),
        elf::EM_LOONGARCH => "loongarch".into(),
        elf::EM_NONE => "no machine (EM_NONE)".into(),
        other => format!("machine {other}"),
    }
}

struct Seg {
    index: usize,
    vaddr: u64,
    memsz: u64,
    offset: u64,
    filesz: u64,
    flags: u32,
}

impl Seg {
    /// The page-aligned guest range `[start, end)` the segment covers at `bias`.
    fn pages(&self, bias: u64) -> (u64, u64) {
        let start = page_floor(self.vaddr + bias);
        let end = page_ceil(self.vaddr + bias + self.memsz).unwrap_or(layout::MMAP_TOP);
        (start, end)
    }
}

/// A validated image, not yet mapped.
struct Image {
    e_type: u16,
    entry: u64,
    phoff: u64,
    phnum: u64,
    /// PT_LOAD segments with a memory size, sorted by address.
    segs: Vec<Seg>,
    /// The address of the program headers as PT_PHDR gives it (no bias).
    pt_phdr: Option<u64>,
    interp: Option<Vec<u8>>,
}

/// Which role an image is loaded in; decides its load bias.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Program,
    Interpreter,
}

impl Image {
    fn bias(&self, role: Role) -> u64 {
        match (self.e_type, role) {
            (elf::ET_DYN, Role::Program) => PIE_BASE,
            (elf::ET_DYN, Role::Interpreter) => INTERP_BASE,
            _ => 0,
        }
    }
}

/// Validates `data` as a riscv64 executable or shared object loaded in `role`.
fn parse(data: &[u8], role: Role) -> Result<Image, ElfError> {
    if data.len() < 4 || data[..4] != elf::ELFMAG {
        return Err(ElfError::NotElf);
    }
    if data.len() < EI_NIDENT {
        return Err(ElfError::Truncated("the ELF identification is incomplete"));
    }
    match data[EI_CLASS] {
        elf::ELFCLASS64 => {}
        elf::ELFCLASS32 => return Err(ElfError::Elf32),
        c => return Err(ElfError::Corrupt(format!("unknown ELF class {c}"))),
    }
    match data[EI_DATA] {
        elf::ELFDATA2LSB => {}
        elf::ELFDATA2MSB => return Err(ElfError::BigEndian),
        d => return Err(ElfError::Corrupt(format!("unknown ELF data encoding {d}"))),
    }
    if data[EI_VERSION] != elf::EV_CURRENT {
        return Err(ElfError::Corrupt(format!(
            "unknown ELF version {}",
            data[EI_VERSION]
        )));
    }
    if data.len() < size_of::<elf::FileHeader64<LE>>() {
        return Err(ElfError::Truncated("the ELF header is incomplete"));
    }
    let hdr = elf::FileHeader64::<Endianness>::parse(data)
        .map_err(|e| ElfError::Corrupt(e.to_string()))?;
    let en = hdr.endian().map_err(|e| ElfError::Corrupt(e.to_string()))?;
    let machine = hdr.e_machine(en);
    if machine != elf::EM_RISCV {
        return Err(ElfError::WrongMachine {
            machine: machine_name(machine),
        });
    }
    let e_type = hdr.e_type(en);
    if e_type != elf::ET_EXEC && e_type != elf::ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
    }
    let phoff = hdr.e_phoff(en);
    let phnum = u64::from(hdr.e_phnum(en));
    if phoff == 0 || phnum == 0 {
        return Err(ElfError::NoLoadableSegment);
    }
    if phnum == u64::from(elf::PN_XNUM) {
        return Err(ElfError::Corrupt(
            "extended program header count is not supported".into(),
        ));
    }
    if usize::from(hdr.e_phentsize(en)) != size_of::<elf::ProgramHeader64<Endianness>>() {
        return Err(ElfError::Corrupt(format!(
            "program header entry size {} (expected 56)",
            hdr.e_phentsize(en)
        )));
    }
    let ph_end = phnum.checked_mul(56).and_then(|n| n.checked_add(phoff));
    if ph_end.is_none_or(|e| e > data.len() as u64) {
        return Err(ElfError::Truncated(
            "the program header table extends past the end of the file",
        ));
    }
    let phdrs = hdr
        .program_headers(en, data)
        .map_err(|e| ElfError::Corrupt(e.to_string()))?;

    // Linux follows the first PT_INTERP and ignores any later one.
    let interp = match phdrs.iter().find(|ph| ph.p_type(en) == elf::PT_INTERP) {
        Some(ph) => Some(interp_name(data, ph.p_offset(en), ph.p_filesz(en))?),
        None => None,
    };
    if role == Role::Interpreter
        && let Some(name) = &interp
    {
        return Err(ElfError::NestedInterp(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let mut img = Image {
        e_type,
        entry: hdr.e_entry(en),
        phoff,
        phnum,
        segs: Vec::new(),
        pt_phdr: phdrs
            .iter()
            .find(|ph| ph.p_type(en) == elf::PT_PHDR)
            .map(|ph| ph.p_vaddr(en)),
        interp,
    };
    let bias = img.bias(role);
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type(en) != elf::PT_LOAD {
            continue;
        }
        let s = Seg {
            index,
            vaddr: ph.p_vaddr(en),
            memsz: ph.p_memsz(en),
            offset: ph.p_offset(en),
            filesz: ph.p_filesz(en),
            flags: ph.p_flags(en),
        };
        if s.memsz == 0 {
            continue;
        }
        if s.filesz > s.memsz {
            return Err(ElfError::Corrupt(format!(
                "program segment {index} has a file size larger than its memory size"
            )));
        }
        if s.offset
            .checked_add(s.filesz)
            .is_none_or(|e| e > data.len() as u64)
        {
            return Err(ElfError::SegmentOutsideFile { index });
        }
        let end = s
            .vaddr
            .checked_add(bias)
            .and_then(|v| v.checked_add(s.memsz));
        if end.is_none_or(|e| e > layout::MMAP_TOP) {
            return Err(ElfError::SegmentOutsideSpace { index });
        }
        img.segs.push(s);
    }
    if img.segs.is_empty() {
        return Err(ElfError::NoLoadableSegment);
    }
    img.segs.sort_by_key(|s| s.vaddr);
    for w in img.segs.windows(2) {
        if w[0].vaddr + w[0].memsz > w[1].vaddr {
            let (a, b) = (w[0].index.min(w[1].index), w[0].index.max(w[1].index));
            return Err(ElfError::SegmentsOverlap {
                first: a,
                second: b,
            });
        }
    }
    Ok(img)
}

/// The `PT_INTERP` string at `offset`: `filesz` bytes ending in NUL, used up to its
/// first NUL (a C string, as Linux opens it).
fn interp_name(data: &[u8], offset: u64, filesz: u64) -> Result<Vec<u8>, ElfError> {
    if filesz < 2 {
        return Err(ElfError::BadInterpName("it is empty"));
    }
    if filesz > INTERP_MAX {
        return Err(ElfError::BadInterpName("it is longer than PATH_MAX"));
    }
    let bytes = offset
        .checked_add(filesz)
        .filter(|&end| end <= data.len() as u64)
        .map(|end| &data[offset as usize..end as usize])
        .ok_or(ElfError::BadInterpName("it lies outside the file"))?;
    if bytes.last() != Some(&0) {
        return Err(ElfError::BadInterpName("it does not end with a NUL byte"));
    }
    let name = bytes.split(|&b| b == 0).next().unwrap_or_default();
    if name.is_empty() {
        return Err(ElfError::BadInterpName("it is empty"));
    }
    Ok(name.to_vec())
}

/// Maps `img`'s segments at `bias`; returns the page after the highest mapped byte.
/// Pages shared by two segments get the union of their permissions, as the kernel's
/// page-granular mappings effectively do.
fn map_segments(
    data: &[u8],
    img: &Image,
    bias: u64,
    mem: &mut GuestMemory,
) -> Result<u64, ElfError> {
    let mut top = 0u64;
    for s in &img.segs {
        let (start, end) = s.pages(bias);
        let mut perm = 0;
        if s.flags & elf::PF_R != 0 {
            perm |= PERM_R;
        }
        if s.flags & elf::PF_W != 0 {
            perm |= PERM_W;
        }
        if s.flags & elf::PF_X != 0 {
            perm |= PERM_X;
        }
        mem.map_union(start, end - start, perm)
            .map_err(|e| ElfError::Corrupt(e.to_string()))?;
        let bytes = &data[s.offset as usize..(s.offset + s.filesz) as usize];
        mem.write_bytes_privileged(s.vaddr + bias, bytes)
            .map_err(|a| ElfError::Corrupt(format!("cannot write segment at {a:#x}")))?;
        top = top.max(end);
    }
    Ok(top)
}

/// Validates `data` as a riscv64 executable (static, static-pie or dynamically linked)
/// and maps it into `mem`. A `PT_INTERP` is returned in [`LoadedImage::interp`].
pub fn load(data: &[u8], mem: &mut GuestMemory) -> Result<LoadedImage, ElfError> {
    let img = parse(data, Role::Program)?;
    let bias = img.bias(Role::Program);
    let brk = map_segments(data, &img, bias, mem)?;
    let (phoff, phnum) = (img.phoff, img.phnum);
    let phdr_size = phnum * 56;
    let phdr = img.pt_phdr.map(|v| v.wrapping_add(bias)).or_else(|| {
        img.segs
            .iter()
            .find(|s| phoff >= s.offset && phoff + phdr_size <= s.offset + s.filesz)
            .map(|s| s.vaddr + bias + (phoff - s.offset))
    });
    Ok(LoadedImage {
        entry: img.entry.wrapping_add(bias),
        phdr,
        phdr_bytes: data[phoff as usize..(phoff + phdr_size) as usize].to_vec(),
        phent: 56,
        phnum,
        bias,
        brk,
        interp: img.interp,
    })
}

/// Validates `data` as an ELF interpreter (an `ET_DYN` shared object such as
/// `ld-linux-riscv64-lp64d.so.1`, or an `ET_EXEC`) and maps it into `mem`, which
/// already holds the program: none of its pages may be taken. An `ET_DYN` interpreter
/// goes to [`INTERP_BASE`], or, when the program occupies part of that range, to the
/// highest free range below [`layout::MMAP_TOP`] that holds it (as Linux maps it where
/// mmap would); an `ET_EXEC` one can only go where its headers say.
pub fn load_interpreter(data: &[u8], mem: &mut GuestMemory) -> Result<LoadedInterp, ElfError> {
    let img = parse(data, Role::Interpreter)?;
    let collision = |bias: u64| {
        img.segs.iter().find(|s| {
            let (start, end) = s.pages(bias);
            !mem.is_free(start, end - start)
        })
    };
    let mut bias = img.bias(Role::Interpreter);
    if let Some(s) = collision(bias) {
        let taken = ElfError::OverlapsProgram { index: s.index };
        if img.e_type != elf::ET_DYN {
            return Err(taken);
        }
        // The span of all segments (sorted, not overlapping): moved as one piece.
        let first = page_floor(img.segs[0].vaddr);
        let (_, end) = img.segs[img.segs.len() - 1].pages(0);
        let Some(at) = mem.find_free_top_down(end - first, MIN_ADDR, layout::MMAP_TOP) else {
            return Err(taken);
        };
        bias = at - first;
        if collision(bias).is_some() {
            return Err(taken);
        }
    }
    map_segments(data, &img, bias, mem)?;
    Ok(LoadedInterp {
        entry: img.entry.wrapping_add(bias),
        bias,
    })
}

/// Test helpers that build ELF images byte by byte (shared with the syscall tests).
#[cfg(test)]
pub(crate) mod build {
    /// A minimal static riscv64 ELF64 executable: one header, `phdrs` program headers
    /// right after it, then `body`.
    pub fn elf(machine: u16, e_type: u16, phdrs: &[[u64; 7]], body: &[u8]) -> Vec<u8> {
        // [p_type|p_flags<<32, offset, vaddr, paddr, filesz, memsz, align]
        let mut v = Vec::new();
        v.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&e_type.to_le_bytes());
        v.extend_from_slice(&machine.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&0x10078u64.to_le_bytes()); // entry
        v.extend_from_slice(&64u64.to_le_bytes()); // phoff
        v.extend_from_slice(&0u64.to_le_bytes()); // shoff
        v.extend_from_slice(&0u32.to_le_bytes()); // flags
        v.extend_from_slice(&64u16.to_le_bytes()); // ehsize
        v.extend_from_slice(&56u16.to_le_bytes()); // phentsize
        v.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
        v.extend_from_slice(&64u16.to_le_bytes()); // shentsize
        v.extend_from_slice(&0u16.to_le_bytes()); // shnum
        v.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
        assert_eq!(v.len(), 64);
        for ph in phdrs {
            v.extend_from_slice(&((ph[0] & 0xffff_ffff) as u32).to_le_bytes());
            v.extend_from_slice(&((ph[0] >> 32) as u32).to_le_bytes());
            for &x in &ph[1..] {
                v.extend_from_slice(&x.to_le_bytes());
            }
        }
        v.extend_from_slice(body);
        v
    }

    /// PT_LOAD with flags R+X covering the whole file at 0x10000.
    pub fn text(len: u64) -> [u64; 7] {
        [1 | (5 << 32), 0, 0x10000, 0x10000, len, len, 0x1000]
    }

    /// A minimal executable of type `e_type` whose PT_INTERP names `interp` (the
    /// bytes as they are in the file: a well-formed one ends with a NUL).
    pub fn with_interp(e_type: u16, interp: &[u8]) -> Vec<u8> {
        let mut body = [0x13u8, 0, 0, 0].repeat(8);
        let name_off = 64 + 2 * 56 + body.len() as u64;
        body.extend_from_slice(interp);
        let len = 64 + 2 * 56 + body.len() as u64;
        let pt_interp = [
            3 | (4 << 32),
            name_off,
            0,
            0,
            interp.len() as u64,
            interp.len() as u64,
            1,
        ];
        elf(243, e_type, &[pt_interp, text(len)], &body)
    }

    /// A valid minimal executable (an `ecall`-free body of `len` bytes).
    pub fn minimal() -> Vec<u8> {
        let body = [0x13u8, 0, 0, 0].repeat(8);
        let len = 64 + 56 + body.len() as u64;
        elf(243, 2, &[text(len)], &body)
    }
}

#[cfg(test)]
mod tests {
    use super::build::*;
    use super::*;
    use rv64::Memory;

    fn load_bytes(d: &[u8]) -> Result<LoadedImage, ElfError> {
        let mut m = GuestMemory::new().unwrap();
        load(d, &mut m)
    }

    #[test]
    fn minimal_static_executable_is_mapped_with_its_permissions() {
        let d = minimal();
        let mut m = GuestMemory::new().unwrap();
        let img = load(&d, &mut m).unwrap();
        assert_eq!(img.entry, 0x10078);
        assert_eq!(img.phdr, Some(0x10040));
        assert_eq!(img.phnum, 1);
        assert_eq!(img.brk, 0x11000);
        assert_eq!(m.load32(0x10078), Ok(0x13));
        assert_eq!(m.fetch16(0x10078), Ok(0x13));
        assert!(m.store8(0x10078, 0).is_err());
    }

    #[test]
    fn bss_beyond_file_size_reads_zero_and_is_writable() {
        let body = vec![0xffu8; 16];
        let data = [1 | (6u64 << 32), 176, 0x20000, 0x20000, 16, 0x3000, 0x1000];
        let d = elf(243, 2, &[text(176), data], &body);
        let mut m = GuestMemory::new().unwrap();
        let img = load(&d, &mut m).unwrap();
        assert_eq!(m.load8(0x2000f), Ok(0xff));
        assert_eq!(m.load8(0x20010), Ok(0));
        m.store64(0x22ff8, 1).unwrap();
        assert_eq!(img.brk, 0x23000);
    }

    #[test]
    fn rejects_each_bad_input_with_its_own_error() {
        assert_eq!(load_bytes(b""), Err(ElfError::NotElf));
        assert_eq!(load_bytes(b"#!/bin/sh\necho hi\n"), Err(ElfError::NotElf));
        assert_eq!(
            load_bytes(&minimal()[..40]),
            Err(ElfError::Truncated("the ELF header is incomplete"))
        );
        let mut d = minimal();
        d[4] = 1;
        assert_eq!(load_bytes(&d), Err(ElfError::Elf32));
        let mut d = minimal();
        d[5] = 2;
        assert_eq!(load_bytes(&d), Err(ElfError::BigEndian));
        let d = elf(62, 2, &[text(152)], &[0; 32]);
        assert_eq!(
            load_bytes(&d),
            Err(ElfError::WrongMachine {
                machine: "x86-64".into()
            })
        );
        let d = elf(243, 1, &[text(152)], &[0; 32]);
        assert_eq!(load_bytes(&d), Err(ElfError::NotExecutable(1)));
        // A PT_INTERP of size 0 (an empty name).
        let interp = [3, 0, 0, 0, 0, 0, 1];
        let d = elf(243, 2, &[interp, text(176)], &[0; 32]);
        assert_eq!(load_bytes(&d), Err(ElfError::BadInterpName("it is empty")));
        let beyond = [1 | (5 << 32), 0x10_0000, 0x10000, 0, 0x100, 0x100, 0x1000];
        let d = elf(243, 2, &[beyond], &[0; 32]);
        assert_eq!(
            load_bytes(&d),
            Err(ElfError::SegmentOutsideFile { index: 0 })
        );
        let a = [1 | (5 << 32), 0, 0x10000, 0, 64, 0x2000, 0x1000];
        let b = [1 | (6 << 32), 0, 0x11000, 0, 64, 0x1000, 0x1000];
        let d = elf(243, 2, &[a, b], &[0; 32]);
        assert_eq!(
            load_bytes(&d),
            Err(ElfError::SegmentsOverlap {
                first: 0,
                second: 1
            })
        );
        let high = [1 | (5 << 32), 0, u64::MAX - 0x10, 0, 64, 0x100, 0x1000];
        let d = elf(243, 2, &[high], &[0; 32]);
        assert_eq!(
            load_bytes(&d),
            Err(ElfError::SegmentOutsideSpace { index: 0 })
        );
        let mut d = minimal();
        d.truncate(100);
        assert!(matches!(load_bytes(&d), Err(ElfError::Truncated(_))));
        let d = elf(243, 2, &[], &[]);
        assert_eq!(load_bytes(&d), Err(ElfError::NoLoadableSegment));
    }

    #[test]
    fn static_pie_is_loaded_at_the_pie_base() {
        let d = minimal();
        let mut d2 = d.clone();
        d2[16] = 3; // ET_DYN
        let mut m = GuestMemory::new().unwrap();
        let img = load(&d2, &mut m).unwrap();
        assert_eq!(img.entry, PIE_BASE + 0x10078);
        assert_eq!(m.load32(PIE_BASE + 0x10078), Ok(0x13));
    }

    #[test]
    fn a_dynamically_linked_program_is_mapped_and_names_its_interpreter() {
        for (e_type, bias) in [(2, 0), (3, PIE_BASE)] {
            let d = with_interp(e_type, b"/lib/ld-linux-riscv64-lp64d.so.1\0");
            let mut m = GuestMemory::new().unwrap();
            let img = load(&d, &mut m).unwrap();
            assert_eq!(
                img.interp.as_deref(),
                Some(&b"/lib/ld-linux-riscv64-lp64d.so.1"[..])
            );
            assert_eq!(img.bias, bias);
            assert_eq!(img.entry, bias + 0x10078);
            assert_eq!(m.load32(bias + 0x100b0), Ok(0x13)); // the body
        }
        // Used up to its first NUL, as Linux does.
        let img = load_bytes(&with_interp(3, b"/lib/ld.so\0junk\0")).unwrap();
        assert_eq!(img.interp.as_deref(), Some(&b"/lib/ld.so"[..]));
    }

    #[test]
    fn malformed_interpreter_names_are_typed_errors() {
        let bad = |name: &[u8]| load_bytes(&with_interp(3, name)).unwrap_err();
        assert_eq!(
            bad(b"/lib/ld.so"),
            ElfError::BadInterpName("it does not end with a NUL byte")
        );
        assert_eq!(bad(b"\0"), ElfError::BadInterpName("it is empty"));
        assert_eq!(bad(b"\0\0\0"), ElfError::BadInterpName("it is empty"));
        let mut huge = vec![b'a'; 5000];
        huge[0] = b'/';
        huge.push(0);
        assert_eq!(
            bad(&huge),
            ElfError::BadInterpName("it is longer than PATH_MAX")
        );
        // A name whose bytes lie past the end of the file.
        let mut d = with_interp(3, b"/lib/ld.so\0");
        let len = d.len();
        d.truncate(len - 4);
        assert!(matches!(
            load_bytes(&d),
            Err(ElfError::BadInterpName("it lies outside the file"))
        ));
        // An offset that wraps around.
        let mut d = with_interp(3, b"/lib/ld.so\0");
        d[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(
            load_bytes(&d),
            Err(ElfError::BadInterpName("it lies outside the file"))
        );
        assert_eq!(
            ElfError::BadInterpName("it is empty").to_string(),
            "has a malformed ELF interpreter name (PT_INTERP): it is empty"
        );
    }

    /// A minimal shared object (ET_DYN) with a text segment at 0 and its entry at 0x78.
    fn shared_object() -> Vec<u8> {
        let body = [0x13u8, 0, 0, 0].repeat(8);
        let len = 64 + 56 + body.len() as u64;
        let mut d = elf(243, 3, &[[1 | (5 << 32), 0, 0, 0, len, len, 0x1000]], &body);
        d[24..32].copy_from_slice(&0x78u64.to_le_bytes());
        d
    }

    #[test]
    fn an_interpreter_is_mapped_at_its_own_base_beside_the_program() {
        let mut m = GuestMemory::new().unwrap();
        let img = load(&with_interp(3, b"/lib/ld.so\0"), &mut m).unwrap();
        let int = load_interpreter(&shared_object(), &mut m).unwrap();
        assert_eq!(int.bias, INTERP_BASE);
        assert_eq!(int.entry, INTERP_BASE + 0x78);
        assert_eq!(m.load32(INTERP_BASE + 0x78), Ok(0x13));
        assert!(m.store8(INTERP_BASE + 0x78, 0).is_err());
        assert_eq!(m.load32(PIE_BASE + 0x100b0), Ok(0x13));
        // The program's break is its own, below the interpreter.
        assert!(img.brk < INTERP_BASE);
    }

    #[test]
    fn an_interpreter_whose_base_is_taken_goes_to_the_highest_free_range() {
        // A program (ET_EXEC) whose text lies where the interpreter would go.
        let body = [0x13u8, 0, 0, 0].repeat(8);
        let len = 64 + 56 + body.len() as u64;
        let at_base = [1 | (5 << 32), 0, INTERP_BASE, INTERP_BASE, len, len, 0x1000];
        let mut m = GuestMemory::new().unwrap();
        load(&elf(243, 2, &[at_base], &body), &mut m).unwrap();
        let int = load_interpreter(&shared_object(), &mut m).unwrap();
        assert_ne!(int.bias, INTERP_BASE);
        assert_eq!(int.bias % 4096, 0);
        assert!(int.bias + 4096 <= layout::MMAP_TOP);
        assert_eq!(int.entry, int.bias + 0x78);
        assert_eq!(m.load32(int.entry), Ok(0x13));
        // The program is untouched.
        assert_eq!(m.load32(INTERP_BASE + 0x78), Ok(0x13));
        assert!(m.store8(INTERP_BASE + 0x78, 0).is_err());
    }

    #[test]
    fn bad_interpreters_are_typed_errors() {
        let interp = |d: &[u8]| {
            let mut m = GuestMemory::new().unwrap();
            load(&minimal(), &mut m).unwrap();
            load_interpreter(d, &mut m)
        };
        assert_eq!(interp(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(interp(b""), Err(ElfError::NotElf));
        let mut x86 = shared_object();
        x86[18..20].copy_from_slice(&62u16.to_le_bytes());
        assert_eq!(
            interp(&x86),
            Err(ElfError::WrongMachine {
                machine: "x86-64".into()
            })
        );
        let mut rel = shared_object();
        rel[16] = 1;
        assert_eq!(interp(&rel), Err(ElfError::NotExecutable(1)));
        // An interpreter that wants an interpreter of its own.
        assert_eq!(
            interp(&with_interp(3, b"/lib/other.so\0")),
            Err(ElfError::NestedInterp("/lib/other.so".into()))
        );
        // An ET_EXEC interpreter whose segments lie where the program is.
        assert_eq!(
            interp(&minimal()),
            Err(ElfError::OverlapsProgram { index: 0 })
        );
        // One placed past the guest space.
        let mut far = shared_object();
        far[64 + 16..64 + 24].copy_from_slice(&(layout::MMAP_TOP - INTERP_BASE).to_le_bytes());
        assert_eq!(
            interp(&far),
            Err(ElfError::SegmentOutsideSpace { index: 0 })
        );
        let mut short = shared_object();
        short.truncate(90);
        assert!(matches!(interp(&short), Err(ElfError::Truncated(_))));
    }

    #[test]
    fn mutated_interpreters_never_panic() {
        let base = shared_object();
        let mut s = 0x51af_d7ed_558c_cd27u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..2_000 {
            let mut d = base.clone();
            for _ in 0..1 + next() % 6 {
                let pos = (next() % d.len() as u64) as usize;
                d[pos] = next() as u8;
            }
            let mut m = GuestMemory::new().unwrap();
            load(&minimal(), &mut m).unwrap();
            let _ = load_interpreter(&d, &mut m);
            // A program whose PT_INTERP is mutated too.
            let mut p = with_interp(3, b"/lib/ld.so\0");
            let pos = 64 + (next() % (56 * 2 + 16)) as usize;
            p[pos] = next() as u8;
            let _ = load_bytes(&p);
        }
    }

    #[test]
    fn mutated_headers_never_panic() {
        // Deterministic xorshift so a failure is reproducible from the iteration number.
        let base = {
            let body = vec![0x13u8; 64];
            let data = [1 | (6u64 << 32), 100, 0x20000, 0x20000, 16, 0x3000, 0x1000];
            elf(243, 2, &[text(240), data], &body)
        };
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..4_000 {
            let mut d = base.clone();
            let flips = 1 + next() % 6;
            for _ in 0..flips {
                // Mostly header bytes (where the interesting validation is).
                let pos = (next() % 176) as usize;
                let r = next();
                d[pos] = match r % 4 {
                    0 => r as u8 >> 3,
                    1 => 0xff,
                    2 => 0,
                    _ => d[pos] ^ (1 << (r % 8)),
                };
            }
            if next() % 8 == 0 {
                d.truncate((next() % d.len() as u64) as usize);
            }
            let mut m = GuestMemory::new().unwrap();
            let _ = load(&d, &mut m);
        }
    }
}
