use guardrail_core::Phi;

#[derive(Phi)]
pub union Either {
    pub a: u32,
    pub b: f32,
}

fn main() {}
