use guardrail_core::Phi;

#[derive(Phi)]
#[phi(name)]
pub struct Patient {
    pub id: String,
}

#[derive(Phi)]
pub enum Contact {
    #[phi(phone)]
    Phone(String),
}

fn main() {}
