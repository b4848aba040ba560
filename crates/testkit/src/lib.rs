pub mod postgres;
pub mod nats;
