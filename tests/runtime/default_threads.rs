//! `elbo::runtime::default_threads` sizes rayon's global pool to one thread without writing the
//! environment. A test binary of its own: rayon's global pool is built once per process, so
//! nothing else here may touch it first.

#[test]
fn one_rayon_thread_and_the_environment_left_alone() {
    let before = std::env::var_os("RAYON_NUM_THREADS");
    elbo::runtime::default_threads();
    elbo::runtime::default_threads(); // a second call changes nothing
    assert_eq!(std::env::var_os("RAYON_NUM_THREADS"), before, "default_threads wrote the environment");
    match before.as_ref().and_then(|v| v.to_str()?.parse::<usize>().ok()).filter(|&n| n > 0) {
        // unset: one thread, so in_matmul_pool runs its work where it is called
        None => {
            assert_eq!(rayon::current_num_threads(), 1);
            let here = std::thread::current().id();
            let there = elbo::runtime::in_matmul_pool(&candle_core::Device::Cpu, || std::thread::current().id());
            assert_eq!(there, here);
        }
        // the user's choice stands
        Some(n) => assert_eq!(rayon::current_num_threads(), n),
    }
}
