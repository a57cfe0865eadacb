//! Coverage: does every guarded action have a rule, and every rule an action?
