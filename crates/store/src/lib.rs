//! What every fnbox store must do, written once: [`conformance`] is a suite of tests that
//! `tests/conformance.rs` runs on each backend (SQLite in a temp dir, PostgreSQL on a
//! throwaway server). The stores themselves are `fnbox-store-sqlite` and
//! `fnbox-store-postgres`; the traits are in `fnbox-core`.

pub mod conformance;
