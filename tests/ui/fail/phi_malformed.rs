use guardrail_core::Phi;

#[derive(Phi)]
pub struct Patient {
    #[phi]
    pub a: String,
    #[phi = "ssn"]
    pub b: String,
    #[phi("ssn")]
    pub c: String,
    #[phi(ssn, name)]
    pub d: String,
    #[phi()]
    pub e: String,
}

fn main() {}
