use guardrail_core::Phi;

/// Holds no PHI, but says nothing about it.
pub struct Foreign;

#[derive(Phi)]
pub struct Patient {
    #[phi(name)]
    pub name: String,
    pub handle: Foreign,
}

fn main() {}
