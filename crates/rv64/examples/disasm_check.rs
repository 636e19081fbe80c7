//! Reads `objdump -d` text on stdin and checks that rv64's decoder + disassembler print
//! the same for every instruction: `riscv64-linux-gnu-objdump -d BIN | cargo run
//! --example disasm_check`. Prints mismatches and a summary; development aid, not a test.

use std::io::BufRead;

fn main() {
    let stdin = std::io::stdin();
    let (mut total, mut bad) = (0u64, 0u64);
    for line in stdin.lock().lines().map_while(Result::ok) {
        // "   10078:\t00a50533          \tadd\ta0,a0,a0" ; comments after '#' or '<'.
        let parts: Vec<&str> = line.split('\t').collect();
        if parts.len() < 3 || !parts[0].trim_end().ends_with(':') {
            continue;
        }
        let Ok(pc) = u64::from_str_radix(parts[0].trim().trim_end_matches(':'), 16) else {
            continue;
        };
        let Ok(raw) = u32::from_str_radix(parts[1].trim(), 16) else {
            continue;
        };
        let mut want = parts[2..].join(" ");
        if let Some(p) = want.find(" <") {
            want.truncate(p);
        }
        if let Some(p) = want.find(" #") {
            want.truncate(p);
        }
        let want = normalize(want.trim());
        total += 1;
        let got = match rv64::decode(raw) {
            Ok(i) => i.display_at(pc).to_string(),
            Err(e) => format!("<{e}>"),
        };
        if got != want {
            bad += 1;
            if bad <= 200 {
                println!("{pc:x}: {raw:08x}: want `{want}` got `{got}`");
            }
        }
    }
    println!("{total} instructions, {bad} mismatches");
}

/// Older binutils print immediate forms under the register form's name (`add sp,sp,-16`
/// for `addi`, `csrrc a4,fcsr,31` for `csrrci`) and `fsrmi zero,4` for `fsrmi 4`; rv64
/// prints the real mnemonic, so the expectation is rewritten.
fn normalize(want: &str) -> String {
    let (m, ops) = want.split_once(' ').unwrap_or((want, ""));
    if matches!(m, "fsrmi" | "fsflagsi") && ops.starts_with("zero,") {
        return format!("{m} {}", &ops[5..]);
    }
    if matches!(m, "csrrw" | "csrrs" | "csrrc")
        && !ops
            .rsplit(',')
            .next()
            .unwrap_or("")
            .starts_with(|c: char| c.is_ascii_lowercase())
    {
        return format!("{m}i {ops}");
    }
    let last = ops.rsplit(',').next().unwrap_or("");
    let numeric = last.starts_with(|c: char| c.is_ascii_digit() || c == '-');
    let imm_forms = [
        "add", "and", "or", "xor", "sll", "srl", "sra", "addw", "sllw", "srlw", "sraw",
    ];
    if numeric && imm_forms.contains(&m) {
        let m = match m {
            "addw" | "sllw" | "srlw" | "sraw" => format!("{}iw", &m[..m.len() - 1]),
            _ => format!("{m}i"),
        };
        format!("{m} {ops}")
    } else {
        want.to_string()
    }
}
