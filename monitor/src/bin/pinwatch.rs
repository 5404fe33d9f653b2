fn main() -> std::process::ExitCode {
    pinwatch::cli::main()
}
