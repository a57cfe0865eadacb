use guardrail_core::Phi;

#[derive(Phi)]
pub struct Patient {
    #[phi(name)]
    #[phi(ssn)]
    pub id: String,
}

fn main() {}
