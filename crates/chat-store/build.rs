// `sqlx::migrate!` embeds `migrations/postgres` when this crate compiles, but cargo does not
// know the macro read that folder: without this, a new migration file alone would not be
// embedded until some source file of the crate changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
