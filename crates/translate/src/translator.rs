//! [`Translator`]: validates a guest block or region, builds its Cranelift function with
//! [`crate::emit`], compiles it for the host and checks that the bytes are
//! position-independent.
//!
//! Invariants: a [`Compiled`] never needs relocation (checked after every compile, a
//! typed error otherwise); bad input (empty, non-contiguous, oversized blocks, or a
//! control transfer before the end) is a [`TranslateError`], never a panic.

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{AbiParam, Function, InstBuilder, Signature, UserFuncName, types};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use rv64::{Insn, Op};

use crate::context::JumpCacheShape;
use crate::emit::{Emitter, HostOptions};

/// Longest block accepted, in instructions (bounds compile time and code size).
pub const MAX_BLOCK_INSNS: usize = 1024;

/// How hard Cranelift optimizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OptLevel {
    /// Tier 1: quick compilation (Cranelift `opt_level=none`).
    #[default]
    Quick,
    /// Tier 2: optimized code (Cranelift `opt_level=speed`).
    Speed,
}

/// How a [`Translator`] compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TranslatorConfig {
    /// Cranelift optimization level.
    pub opt: OptLevel,
    /// Chained blocks: a block that ends with "continue at pc" probes the executor's
    /// jump cache (`ctx.jump_cache`) inline and tail-calls the next block on a hit while
    /// `ctx.chain_budget` lasts, instead of returning. Chained blocks use Cranelift's
    /// `tail` calling convention, so they must be entered through
    /// [`Translator::trampoline`], never called directly.
    pub chain: bool,
    /// With chaining: the jump cache's shape, if every context this code runs with has
    /// a jump cache (`ctx.jump_cache` not null) of that shape (cheaper probes; see
    /// [`JumpCacheShape`]). `None` reads `ctx.jc_shift` and `ctx.jc_mask` at run time
    /// and does not chain while `ctx.jump_cache` is null.
    pub jump_cache: Option<JumpCacheShape>,
    /// The `guest_size` of every context this code runs with, if known (a multiple of
    /// the page size): the inline bounds test then compares with an immediate instead
    /// of loading `ctx.guest_size`. `None` reads it at run time.
    pub guest_size: Option<u64>,
    /// Where the permission table is relative to guest memory, if every context this
    /// code runs with has `perms == mem_base + offset`: accesses then reach the table
    /// through the memory base (one register fewer in every loop). `None` reads
    /// `ctx.perms`.
    pub perms_offset: Option<i32>,
}

/// Why a block could not be translated. The engine falls back to the interpreter.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("the host ISA is not supported by Cranelift: {0}")]
    HostIsa(String),
    #[error("invalid Cranelift setting: {0}")]
    Settings(String),
    #[error("empty block")]
    EmptyBlock,
    #[error("block of {0} instructions is longer than the limit of {MAX_BLOCK_INSNS}")]
    TooLong(usize),
    #[error("instruction at {pc:#x} has length {len}; only 2 and 4 exist")]
    BadLength { pc: u64, len: u8 },
    #[error("instruction at {pc:#x} does not follow the previous one (expected {expected:#x})")]
    NotContiguous { pc: u64, expected: u64 },
    #[error("block at {pc:#x} appears twice in the region")]
    DuplicateBlock { pc: u64 },
    #[error("control transfer at {pc:#x} is not the last instruction of the block")]
    EarlyEnd { pc: u64 },
    #[error("instruction at {pc:#x} does not match its raw bits {raw:#x} (not from rv64::decode?)")]
    Inconsistent { pc: u64, raw: u32 },
    #[error("Cranelift failed to compile block at {pc:#x}: {msg}")]
    Codegen { pc: u64, msg: String },
    #[error(
        "code for block at {pc:#x} needs {count} relocation(s); translated code must be position-independent"
    )]
    Relocations { pc: u64, count: usize },
    #[error("the baseline tier does not translate {what} (at {pc:#x})")]
    Unsupported { pc: u64, what: String },
}

/// Host code for one guest block or region: `extern "C" fn(*mut JitContext) -> u64`
/// (or the `tail` convention when chaining), placed anywhere (no relocations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compiled {
    /// The machine code; entry at offset 0.
    pub code: Vec<u8>,
    /// Guest address the code starts executing (the cache key).
    pub entry: u64,
    /// Lowest guest address translated (equals `entry` for a single block).
    pub guest_start: u64,
    /// One past the highest guest byte translated. `[guest_start, guest_end)` covers
    /// every range in `ranges` (conservative for invalidation).
    pub guest_end: u64,
    /// The guest byte range `[start, end)` of every block translated, in input order.
    pub ranges: Vec<(u64, u64)>,
    /// Number of guest instructions.
    pub insns: usize,
}

/// One per compile thread (it is `Send`): owns the host ISA and reusable Cranelift
/// contexts.
pub struct Translator {
    isa: OwnedTargetIsa,
    /// The host ISA has fused multiply-add (see `emit::HostOptions::fma`).
    host_fma: bool,
    fctx: FunctionBuilderContext,
    ctx: cranelift_codegen::Context,
    config: TranslatorConfig,
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator")
            .field("isa", &self.isa.name())
            .field("config", &self.config)
            .finish()
    }
}

impl Translator {
    /// A tier-1 (quick) translator for the host.
    pub fn new() -> Result<Self, TranslateError> {
        Self::with_opt_level(OptLevel::Quick)
    }

    /// An unchained translator for the host with the given optimization level.
    pub fn with_opt_level(opt: OptLevel) -> Result<Self, TranslateError> {
        Self::with_config(TranslatorConfig {
            opt,
            chain: false,
            jump_cache: None,
            guest_size: None,
            perms_offset: None,
        })
    }

    /// A translator for the host with `config`.
    pub fn with_config(config: TranslatorConfig) -> Result<Self, TranslateError> {
        let opt = config.opt;
        let mut flags = settings::builder();
        let level = match opt {
            OptLevel::Quick => "none",
            OptLevel::Speed => "speed",
        };
        let set = |b: &mut settings::Builder, k: &str, v: &str| {
            b.set(k, v)
                .map_err(|e| TranslateError::Settings(format!("{k}={v}: {e}")))
        };
        set(&mut flags, "opt_level", level)?;
        // Both tiers use the backtracking allocator: measured on the coremark guest, the
        // single-pass allocator spills every value, so its code ran 1.6x slower *and*
        // took longer to compile in total (more bytes to emit: 3.87 s / 0.38 s of
        // compile vs 2.47 s / 0.18 s). Tier 1 still skips Cranelift's optimiser.
        let regalloc = match opt {
            OptLevel::Quick => "backtracking",
            OptLevel::Speed => "backtracking",
        };
        set(&mut flags, "regalloc_algorithm", regalloc)?;
        if config.chain {
            // Cranelift's x86-64 tail calls rely on frame pointers.
            set(&mut flags, "preserve_frame_pointers", "true")?;
        }
        // The IR verifier costs compile time; debug builds (the tests) keep it on.
        set(
            &mut flags,
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )?;
        let isa = cranelift_native::builder()
            .map_err(|e| TranslateError::HostIsa(e.to_string()))?
            .finish(settings::Flags::new(flags))
            .map_err(|e| TranslateError::HostIsa(e.to_string()))?;
        let host_fma = isa
            .isa_flags()
            .iter()
            .any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
        Ok(Translator {
            isa,
            host_fma,
            fctx: FunctionBuilderContext::new(),
            ctx: cranelift_codegen::Context::new(),
            config,
        })
    }

    /// The configuration this translator compiles with.
    pub fn config(&self) -> TranslatorConfig {
        self.config
    }

    /// The calling convention of translated blocks.
    fn block_call_conv(&self) -> CallConv {
        if self.config.chain {
            CallConv::Tail
        } else {
            self.isa.default_call_conv()
        }
    }

    /// For chained blocks: host code of `extern "C" fn(ctx: *mut JitContext, block: *const
    /// u8) -> u64`, which runs the translated block at `block` (and whatever it chains
    /// to) and returns its status. Position-independent like the blocks; one per process
    /// is enough.
    pub fn trampoline(&mut self) -> Result<Compiled, TranslateError> {
        let cc = self.isa.default_call_conv();
        let mut sig = Signature::new(cc);
        sig.params.push(AbiParam::new(types::I64));
        sig.params.push(AbiParam::new(types::I64));
        sig.returns.push(AbiParam::new(types::I64));
        self.ctx.clear();
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, 1), sig);
        let block_sig = block_signature(self.block_call_conv());
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (ctx, code) = (b.block_params(entry)[0], b.block_params(entry)[1]);
            let sig = b.import_signature(block_sig);
            let call = b.ins().call_indirect(sig, code, &[ctx]);
            let st = b.inst_results(call)[0];
            b.ins().return_(&[st]);
            b.seal_all_blocks();
            b.finalize(self.isa.frontend_config());
        }
        self.finish(0, Vec::new(), 0)
    }

    /// Translates one basic block: `(pc, insn)` pairs at consecutive addresses, where only
    /// the last instruction may end a block ([`rv64::Op::ends_block`]). A block that does
    /// not end in a control transfer falls through to the address after it.
    ///
    /// Never panics: a panic inside Cranelift (a code generator bug) is caught, the
    /// translator's contexts are reset, and it is reported as
    /// [`TranslateError::Codegen`], so the engine can fall back to the interpreter.
    ///
    /// A block that branches or jumps back to its own start (a tight loop) loops inside
    /// the function as a region of one block would, one unit of `ctx.chain_budget` per
    /// iteration.
    pub fn translate(&mut self, block: &[(u64, Insn)]) -> Result<Compiled, TranslateError> {
        let self_loop = match (block.first(), block.last()) {
            (Some(&(start, _)), Some(&(pc, last))) => {
                matches!(
                    last.op,
                    Op::Beq | Op::Bne | Op::Blt | Op::Bge | Op::Bltu | Op::Bgeu | Op::Jal
                ) && pc.wrapping_add(last.imm as u64) == start
            }
            _ => false,
        };
        self.translate_blocks(&[block], self_loop)
    }

    /// Translates a region: several basic blocks (each shaped as for
    /// [`Translator::translate`]) compiled as one function entered at the first block's
    /// first instruction. A direct branch, jump or fall-through to the start of any block
    /// of the region stays inside the function (loops run without leaving it). A
    /// transfer to the same or an earlier block of `blocks` (a back edge: only those can
    /// close a loop) uses one unit of `ctx.chain_budget`; when the budget is 0 it leaves
    /// the function with "continue at pc" instead, so the dispatcher regains control.
    /// Forward transfers cost nothing. Indirect jumps and transfers elsewhere leave as from a single block
    /// (chaining when configured). Never panics, as [`Translator::translate`].
    pub fn translate_region(
        &mut self,
        blocks: &[&[(u64, Insn)]],
    ) -> Result<Compiled, TranslateError> {
        if blocks.is_empty() {
            return Err(TranslateError::EmptyBlock);
        }
        self.translate_blocks(blocks, true)
    }

    fn translate_blocks(
        &mut self,
        blocks: &[&[(u64, Insn)]],
        region: bool,
    ) -> Result<Compiled, TranslateError> {
        let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(blocks.len());
        let mut insns = 0usize;
        for block in blocks {
            let range = validate(block)?;
            if ranges.iter().any(|&(start, _)| start == range.0) {
                return Err(TranslateError::DuplicateBlock { pc: range.0 });
            }
            insns += block.len();
            ranges.push(range);
        }
        if insns > MAX_BLOCK_INSNS {
            return Err(TranslateError::TooLong(insns));
        }
        let entry = ranges[0].0;
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.translate_valid(blocks, region, entry, &ranges, insns)
        }));
        match run {
            Ok(result) => result,
            Err(panic) => {
                // The contexts may be half-updated: start from fresh ones.
                self.ctx = cranelift_codegen::Context::new();
                self.fctx = FunctionBuilderContext::new();
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_string());
                Err(TranslateError::Codegen {
                    pc: entry,
                    msg: format!("Cranelift panicked: {msg}"),
                })
            }
        }
    }

    fn translate_valid(
        &mut self,
        blocks: &[&[(u64, Insn)]],
        region: bool,
        entry: u64,
        ranges: &[(u64, u64)],
        insns: usize,
    ) -> Result<Compiled, TranslateError> {
        let cc = self.block_call_conv();
        let helper_cc = self.isa.default_call_conv();
        self.ctx.clear();
        self.ctx.func =
            Function::with_name_signature(UserFuncName::user(0, 0), block_signature(cc));
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let chain = self.config.chain.then_some(cc);
            let host = HostOptions {
                jump_cache: self.config.jump_cache.filter(|s| s.len.is_power_of_two()),
                guest_size: self.config.guest_size,
                perms_offset: self.config.perms_offset,
                fma: self.host_fma,
            };
            Emitter::emit(&mut b, blocks, region, helper_cc, chain, host);
            b.finalize(self.isa.frontend_config());
        }
        self.finish(entry, ranges.to_vec(), insns)
    }

    /// Compiles the function in `self.ctx` and checks it needs no relocation.
    fn finish(
        &mut self,
        entry: u64,
        ranges: Vec<(u64, u64)>,
        insns: usize,
    ) -> Result<Compiled, TranslateError> {
        let compiled = self
            .ctx
            .compile(&*self.isa, &mut ControlPlane::default())
            .map_err(|e| TranslateError::Codegen {
                pc: entry,
                msg: format!("{:?}", e.inner),
            })?;
        let relocs = compiled.buffer.relocs().len();
        if relocs != 0 {
            return Err(TranslateError::Relocations {
                pc: entry,
                count: relocs,
            });
        }
        let guest_start = ranges.iter().map(|r| r.0).min().unwrap_or(entry);
        let guest_end = ranges.iter().map(|r| r.1).max().unwrap_or(entry);
        Ok(Compiled {
            code: compiled.code_buffer().to_vec(),
            entry,
            guest_start,
            guest_end,
            ranges,
            insns,
        })
    }
}

/// `fn(ctx: i64) -> i64` in `cc`: the signature of every translated block.
fn block_signature(cc: CallConv) -> Signature {
    let mut sig = Signature::new(cc);
    sig.params.push(AbiParam::new(types::I64));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Checks the shape of a block; returns its guest range.
pub(crate) fn validate(block: &[(u64, Insn)]) -> Result<(u64, u64), TranslateError> {
    let Some(&(start, _)) = block.first() else {
        return Err(TranslateError::EmptyBlock);
    };
    if block.len() > MAX_BLOCK_INSNS {
        return Err(TranslateError::TooLong(block.len()));
    }
    let mut expected = start;
    for (k, &(pc, insn)) in block.iter().enumerate() {
        if pc != expected {
            return Err(TranslateError::NotContiguous { pc, expected });
        }
        if insn.len != 2 && insn.len != 4 {
            return Err(TranslateError::BadLength { pc, len: insn.len });
        }
        if insn.op.ends_block() && k + 1 != block.len() {
            return Err(TranslateError::EarlyEnd { pc });
        }
        // Inline code uses the decoded fields, helpers re-decode `raw`: they must agree,
        // or the fast and slow paths of one instruction would differ.
        if insn.op != rv64::Op::Illegal && rv64::decode(insn.raw).ok() != Some(insn) {
            return Err(TranslateError::Inconsistent { pc, raw: insn.raw });
        }
        expected = pc.wrapping_add(insn.len as u64);
    }
    Ok((start, expected))
}

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Translator>();
    assert_send::<Compiled>();
};
