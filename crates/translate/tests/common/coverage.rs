//! What the reference run of a differential test actually executed: every operation
//! reached and retired, rounding modes (static and through `frm`), compressed forms,
//! CSRs, SC with and without a matching reservation, and memory accesses by where they
//! fall relative to page edges and what the page map allows. The tests assert it (see
//! [`Expect`]) rather than assume the generator produces it.

use std::fmt::Write as _;

use rv64::{Cpu, Exit, Insn, Op};
use translate::context::{PAGE_SHIFT, PERM_R, PERM_W};

use super::GUEST_SIZE;
use super::random::{CFORMS, cform, rounds};

/// Every operation, in declaration order (`ALL_OPS[k] as usize == k`, checked by a test:
/// a new operation must be added here, and so to every coverage assertion).
pub const ALL_OPS: [Op; 157] = {
    use Op::*;
    [
        Illegal, Lui, Auipc, Jal, Jalr, Beq, Bne, Blt, Bge, Bltu, Bgeu, Lb, Lh, Lw, Ld, Lbu, Lhu,
        Lwu, Sb, Sh, Sw, Sd, Addi, Slti, Sltiu, Xori, Ori, Andi, Slli, Srli, Srai, Add, Sub, Sll,
        Slt, Sltu, Xor, Srl, Sra, Or, And, Addiw, Slliw, Srliw, Sraiw, Addw, Subw, Sllw, Srlw,
        Sraw, Fence, Ecall, Ebreak, FenceI, Mul, Mulh, Mulhsu, Mulhu, Div, Divu, Rem, Remu, Mulw,
        Divw, Divuw, Remw, Remuw, LrW, ScW, AmoswapW, AmoaddW, AmoxorW, AmoandW, AmoorW, AmominW,
        AmomaxW, AmominuW, AmomaxuW, LrD, ScD, AmoswapD, AmoaddD, AmoxorD, AmoandD, AmoorD,
        AmominD, AmomaxD, AmominuD, AmomaxuD, Csrrw, Csrrs, Csrrc, Csrrwi, Csrrsi, Csrrci, Flw,
        Fsw, FmaddS, FmsubS, FnmsubS, FnmaddS, FaddS, FsubS, FmulS, FdivS, FsqrtS, FsgnjS, FsgnjnS,
        FsgnjxS, FminS, FmaxS, FcvtWS, FcvtWuS, FcvtLS, FcvtLuS, FmvXW, FeqS, FltS, FleS, FclassS,
        FcvtSW, FcvtSWu, FcvtSL, FcvtSLu, FmvWX, Fld, Fsd, FmaddD, FmsubD, FnmsubD, FnmaddD, FaddD,
        FsubD, FmulD, FdivD, FsqrtD, FsgnjD, FsgnjnD, FsgnjxD, FminD, FmaxD, FcvtSD, FcvtDS, FeqD,
        FltD, FleD, FclassD, FcvtWD, FcvtWuD, FcvtLD, FcvtLuD, FmvXD, FcvtDW, FcvtDWu, FcvtDL,
        FcvtDLu, FmvDX,
    ]
};

const N_OPS: usize = ALL_OPS.len();

/// Where an access falls, judged from its address, size and the page map (the
/// categories the inline checks of translated code treat differently).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edge {
    /// Allowed, aligned, inside a page with an allowed next page.
    InPage,
    /// Allowed and misaligned, inside one page.
    Misaligned,
    /// Allowed, across a page boundary.
    CrossOk,
    /// Allowed, ending in the last 8 bytes of a page whose next page is not allowed (no
    /// fast bit: the in-page test of the last page of a mapping).
    MappingEnd,
    /// Allowed, in the last page of the guest space.
    LastPage,
    /// The page it starts in is not allowed.
    Denied,
    /// Starts in an allowed page, crosses into an unmapped one.
    CrossIntoUnmapped,
    /// Starts in an allowed page, crosses into a mapped one without the permission.
    CrossIntoForbidden,
    /// Starts inside the guest space and ends past it.
    CrossesEnd,
    /// Starts at or past the end of the guest space (wrapped addresses included).
    OutOfSpace,
    /// A misaligned LR, SC or AMO (which faults).
    MisalignedAtomic,
}

pub const EDGES: [Edge; 11] = [
    Edge::InPage,
    Edge::Misaligned,
    Edge::CrossOk,
    Edge::MappingEnd,
    Edge::LastPage,
    Edge::Denied,
    Edge::CrossIntoUnmapped,
    Edge::CrossIntoForbidden,
    Edge::CrossesEnd,
    Edge::OutOfSpace,
    Edge::MisalignedAtomic,
];

/// Loads, stores, atomics: the rows of [`Coverage::access`].
pub const ACCESS_KINDS: [&str; 3] = ["load", "store", "atomic"];

/// The CSRs a user program may name, and one it may not (columns of [`Coverage::csr`]).
pub const CSRS: [(&str, i64); 6] = [
    ("fflags", 1),
    ("frm", 2),
    ("fcsr", 3),
    ("cycle", 0xc00),
    ("instret", 0xc02),
    ("other", -1),
];

const CSR_OPS: [Op; 6] = [
    Op::Csrrw,
    Op::Csrrs,
    Op::Csrrc,
    Op::Csrrwi,
    Op::Csrrsi,
    Op::Csrrci,
];

/// Exit kinds of a reference run, by name.
pub const EXIT_KINDS: [&str; 6] = ["continue", "ecall", "ebreak", "fence.i", "illegal", "fault"];

pub fn exit_kind(exit: Option<Exit>) -> &'static str {
    match exit {
        None | Some(Exit::Budget) => "continue",
        Some(Exit::Ecall) => "ecall",
        Some(Exit::Ebreak) => "ebreak",
        Some(Exit::FenceI) => "fence.i",
        Some(Exit::Illegal { .. }) => "illegal",
        Some(Exit::Fault { .. }) => "fault",
    }
}

/// What the reference run of one or many sequences executed.
#[derive(Clone, Debug)]
pub struct Coverage {
    /// Per operation (`op as usize`): instructions reached, and retired.
    pub reached: Vec<u64>,
    pub retired: Vec<u64>,
    /// Per rounding operation: retired with each static rounding field 0..=4.
    pub rm_static: Vec<[u64; 5]>,
    /// Per rounding operation: reached with the dynamic field, by `frm` (5..=7 are
    /// illegal).
    pub rm_dynamic: Vec<[u64; 8]>,
    /// Per compressed form ([`CFORMS`]): reached.
    pub cforms: Vec<u64>,
    /// Per CSR operation and [`CSRS`] column: reached.
    pub csr: [[u64; 6]; 6],
    /// Per [`ACCESS_KINDS`] row and [`EDGES`] column: accesses reached.
    pub access: [[u64; 11]; 3],
    /// SC reached (aligned) with a matching reservation, and without.
    pub sc: [u64; 2],
}

impl Default for Coverage {
    fn default() -> Self {
        Coverage {
            reached: vec![0; N_OPS],
            retired: vec![0; N_OPS],
            rm_static: vec![[0; 5]; N_OPS],
            rm_dynamic: vec![[0; 8]; N_OPS],
            cforms: vec![0; CFORMS.len()],
            csr: [[0; 6]; 6],
            access: [[0; 11]; 3],
            sc: [0; 2],
        }
    }
}

/// The size, kind row and needed permission of a memory access by `op`.
fn access_of(op: Op) -> Option<(u64, usize, u8)> {
    use Op::*;
    Some(match op {
        Lb | Lbu => (1, 0, PERM_R),
        Lh | Lhu => (2, 0, PERM_R),
        Lw | Lwu | Flw => (4, 0, PERM_R),
        Ld | Fld => (8, 0, PERM_R),
        Sb => (1, 1, PERM_W),
        Sh => (2, 1, PERM_W),
        Sw | Fsw => (4, 1, PERM_W),
        Sd | Fsd => (8, 1, PERM_W),
        LrW => (4, 2, PERM_R),
        LrD => (8, 2, PERM_R),
        ScW => (4, 2, PERM_W),
        ScD => (8, 2, PERM_W),
        AmoswapW | AmoaddW | AmoxorW | AmoandW | AmoorW | AmominW | AmomaxW | AmominuW
        | AmomaxuW => (4, 2, PERM_R | PERM_W),
        AmoswapD | AmoaddD | AmoxorD | AmoandD | AmoorD | AmominD | AmomaxD | AmominuD
        | AmomaxuD => (8, 2, PERM_R | PERM_W),
        _ => return None,
    })
}

/// Classifies an access of `size` bytes at `addr` needing `need` under `perms`.
pub fn edge(addr: u64, size: u64, need: u8, atomic: bool, perms: &[u8]) -> Edge {
    let space = GUEST_SIZE as u64;
    if atomic && !addr.is_multiple_of(size) {
        return Edge::MisalignedAtomic;
    }
    if addr >= space {
        return Edge::OutOfSpace;
    }
    if addr + size > space {
        return Edge::CrossesEnd;
    }
    let perm = |page: u64| perms.get(page as usize).copied().unwrap_or(0) & (PERM_R | PERM_W);
    let allowed = |page: u64| perm(page) & need == need;
    let first = addr >> PAGE_SHIFT;
    let last = (addr + size - 1) >> PAGE_SHIFT;
    if !allowed(first) {
        return Edge::Denied;
    }
    if last != first {
        return match (allowed(last), perm(last)) {
            (true, _) => Edge::CrossOk,
            (false, 0) => Edge::CrossIntoUnmapped,
            (false, _) => Edge::CrossIntoForbidden,
        };
    }
    if first == (space >> PAGE_SHIFT) - 1 {
        return Edge::LastPage;
    }
    if !allowed(first + 1) && addr + size > ((first + 1) << PAGE_SHIFT) - 8 {
        return Edge::MappingEnd;
    }
    if !addr.is_multiple_of(size) {
        Edge::Misaligned
    } else {
        Edge::InPage
    }
}

/// What [`Coverage::before`] saw of an instruction about to execute.
#[derive(Clone, Copy, Debug)]
pub struct Pending {
    op: Op,
    sc_matched: Option<bool>,
}

impl Coverage {
    /// Records `insn`, about to execute from `cpu` under `perms`.
    pub fn before(&mut self, cpu: &Cpu, insn: &Insn, perms: &[u8]) -> Pending {
        let k = insn.op as usize;
        self.reached[k] += 1;
        if insn.len == 2
            && let Some(f) = cform(insn.raw)
        {
            self.cforms[f] += 1;
        }
        if rounds(insn.op) && insn.rm == 7 {
            self.rm_dynamic[k][(cpu.frm & 7) as usize] += 1;
        }
        if let Some(c) = CSR_OPS.iter().position(|&o| o == insn.op) {
            let col = CSRS
                .iter()
                .position(|&(_, n)| n == insn.imm)
                .unwrap_or(CSRS.len() - 1);
            self.csr[c][col] += 1;
        }
        let mut sc_matched = None;
        if let Some((size, row, need)) = access_of(insn.op) {
            let addr = cpu.x[(insn.rs1 & 31) as usize].wrapping_add(insn.imm as u64);
            let e = edge(addr, size, need, row == 2, perms);
            self.access[row][e as usize] += 1;
            if matches!(insn.op, Op::ScW | Op::ScD) && e != Edge::MisalignedAtomic {
                sc_matched = Some(cpu.reservation == addr);
            }
        }
        Pending {
            op: insn.op,
            sc_matched,
        }
    }

    /// Records the result of the instruction `p` came from.
    pub fn after(&mut self, p: Pending, insn: &Insn, result: &Result<(), Exit>) {
        let retired = match result {
            Ok(()) => true,
            Err(e) => e.retired(),
        };
        if !retired {
            return;
        }
        let k = p.op as usize;
        self.retired[k] += 1;
        if rounds(p.op) && insn.rm < 5 {
            self.rm_static[k][insn.rm as usize] += 1;
        }
        if let Some(m) = p.sc_matched {
            self.sc[usize::from(!m)] += 1;
        }
    }

    pub fn merge(&mut self, o: &Coverage) {
        let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.reached, &o.reached);
        add(&mut self.retired, &o.retired);
        add(&mut self.cforms, &o.cforms);
        for (a, b) in self.rm_static.iter_mut().zip(&o.rm_static) {
            add(a, b);
        }
        for (a, b) in self.rm_dynamic.iter_mut().zip(&o.rm_dynamic) {
            add(a, b);
        }
        for (a, b) in self.csr.iter_mut().zip(&o.csr) {
            add(a, b);
        }
        for (a, b) in self.access.iter_mut().zip(&o.access) {
            add(a, b);
        }
        add(&mut self.sc, &o.sc);
    }

    /// Everything `want` asks for that this run did not do, one line each.
    pub fn missing(&self, want: &Expect) -> Vec<String> {
        let mut out = Vec::new();
        for &op in &ALL_OPS {
            let k = op as usize;
            if !(want.ops)(op) {
                continue;
            }
            if self.reached[k] == 0 {
                out.push(format!("{op:?} never reached"));
            } else if self.retired[k] == 0 && !matches!(op, Op::Illegal | Op::Ecall | Op::Ebreak) {
                out.push(format!("{op:?} never retired"));
            }
            if want.rounding && rounds(op) {
                for rm in 0..5 {
                    if self.rm_static[k][rm] == 0 {
                        out.push(format!("{op:?} never retired with static rm {rm}"));
                    }
                }
                for frm in 0..5 {
                    if self.rm_dynamic[k][frm] == 0 {
                        out.push(format!("{op:?} never reached dynamic with frm {frm}"));
                    }
                }
            }
        }
        if want.rounding {
            for frm in 5..8 {
                if self.rm_dynamic.iter().all(|m| m[frm] == 0) {
                    out.push(format!("no dynamic rounding with the invalid frm {frm}"));
                }
            }
        }
        for (f, &(name, _, _)) in CFORMS.iter().enumerate() {
            if self.cforms[f] == 0 {
                out.push(format!("compressed form {name} never reached"));
            }
        }
        if want.csr {
            for (c, op) in CSR_OPS.iter().enumerate() {
                for (col, (name, _)) in CSRS.iter().enumerate() {
                    if self.csr[c][col] == 0 {
                        out.push(format!("{op:?} on {name} never reached"));
                    }
                }
            }
        }
        for (row, edges) in want.access.iter().enumerate() {
            for &e in *edges {
                if self.access[row][e as usize] == 0 {
                    out.push(format!("no {} {e:?}", ACCESS_KINDS[row]));
                }
            }
        }
        if want.atomics && self.sc.contains(&0) {
            out.push(format!(
                "SC with matching / other reservation: {:?}",
                self.sc
            ));
        }
        out
    }

    /// A short account: how many of the asked-for items were hit, and the rarest.
    pub fn summary(&self, want: &Expect) -> String {
        let ops: Vec<Op> = ALL_OPS.iter().copied().filter(|&o| (want.ops)(o)).collect();
        let reached = ops
            .iter()
            .filter(|&&o| self.reached[o as usize] > 0)
            .count();
        let rarest = ops.iter().min_by_key(|&&o| self.reached[o as usize]);
        let mut s = format!("ops {reached}/{}", ops.len());
        if let Some(&o) = rarest {
            let _ = write!(s, " (rarest {o:?} x{})", self.reached[o as usize]);
        }
        if want.rounding {
            let rops: Vec<Op> = ops.iter().copied().filter(|&o| rounds(o)).collect();
            let hit = rops
                .iter()
                .map(|&o| {
                    let k = o as usize;
                    self.rm_static[k][..5].iter().filter(|&&n| n > 0).count()
                        + self.rm_dynamic[k][..5].iter().filter(|&&n| n > 0).count()
                })
                .sum::<usize>();
            let _ = write!(s, ", rounding (op, mode) {hit}/{}", rops.len() * 10);
        }
        let cf = self.cforms.iter().filter(|&&n| n > 0).count();
        let _ = write!(s, ", compressed forms {cf}/{}", CFORMS.len());
        for (row, edges) in want.access.iter().enumerate() {
            if edges.is_empty() {
                continue;
            }
            let hit = edges
                .iter()
                .filter(|&&e| self.access[row][e as usize] > 0)
                .count();
            let _ = write!(s, ", {} edges {hit}/{}", ACCESS_KINDS[row], edges.len());
        }
        if want.atomics {
            let _ = write!(s, ", sc matched/not {}/{}", self.sc[0], self.sc[1]);
        }
        s
    }
}

/// What a tier's generator must make its reference runs execute.
pub struct Expect {
    /// Operations that must be reached (and retired, for those that can retire).
    pub ops: fn(Op) -> bool,
    /// Every rounding operation with every static and dynamic mode.
    pub rounding: bool,
    /// Every CSR operation on every CSR column.
    pub csr: bool,
    /// SC with and without a matching reservation.
    pub atomics: bool,
    /// Per access kind, the edges that must occur.
    pub access: [&'static [Edge]; 3],
    /// Exit kinds of whole sequences that must occur.
    pub exits: &'static [&'static str],
}

const LOAD_EDGES: &[Edge] = &[
    Edge::InPage,
    Edge::Misaligned,
    Edge::CrossOk,
    Edge::MappingEnd,
    Edge::LastPage,
    Edge::Denied,
    Edge::CrossIntoUnmapped,
    Edge::CrossIntoForbidden,
    Edge::CrossesEnd,
    Edge::OutOfSpace,
];

const ATOMIC_EDGES: &[Edge] = &[
    Edge::InPage,
    Edge::MappingEnd,
    Edge::Denied,
    Edge::OutOfSpace,
    Edge::MisalignedAtomic,
];

impl Expect {
    /// Every operation and case: the Cranelift tiers' generators.
    pub fn everything() -> Expect {
        Expect {
            ops: |_| true,
            rounding: true,
            csr: true,
            atomics: true,
            access: [LOAD_EDGES, LOAD_EDGES, ATOMIC_EDGES],
            exits: &EXIT_KINDS,
        }
    }

    /// What the baseline tier translates.
    pub fn baseline() -> Expect {
        Expect {
            ops: translate::Baseline::supports,
            rounding: false,
            csr: false,
            atomics: false,
            access: [LOAD_EDGES, LOAD_EDGES, &[]],
            exits: &EXIT_KINDS,
        }
    }
}
