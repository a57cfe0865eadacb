use guardrail_core::Phi;

#[derive(Phi)]
pub struct Patient {
    #[phi(sssn)]
    pub ssn: String,
    #[phi(secret)]
    pub other: String,
}

fn main() {}
