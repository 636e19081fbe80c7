//! F and D semantics: exact IEEE 754 arithmetic with RISC-V NaN rules, all rounding modes
//! and fflags.
