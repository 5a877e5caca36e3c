//! The `eddy` command. See `eddy --help`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use eddy::cli::{CertCommand, Cli, Command, ConfigCommand};
use eddy::commands::{dlq, group, logs, manage, ota, passwd, rule, serve};
use eddy::config::{Config, DEFAULT_TOML};
use tracing_subscriber::EnvFilter;

fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config(ConfigCommand::Default) = cli.command {
        print!("{DEFAULT_TOML}");
        return ExitCode::SUCCESS;
    }
    // Hashing a password needs no configuration: a broken config must not stand in the way
    // of fixing it.
    if let Command::Passwd(args) = &cli.command {
        return match passwd::run(args) {
            Ok(phc) => {
                println!("{phc}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("eddy: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Cert(CertCommand::Dev { out, hosts }) = &cli.command {
        return match eddy::tls::dev_certificates(hosts).and_then(|certs| certs.write(out)) {
            Ok(()) => {
                println!(
                    "wrote {dir}/ca.pem, ca.key, server.pem, server.key\n\
                     set mqtt.tls-cert = \"{dir}/server.pem\" and mqtt.tls-key = \"{dir}/server.key\"; \
                     clients trust {dir}/ca.pem",
                    dir = out.display()
                );
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("eddy: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("eddy: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("eddy: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => {
                init_logging(&config.log.level);
                serve::run(config).await.map(|()| None)
            }
            Command::Product(cmd) => manage::product(&config, cmd).await.map(Some),
            Command::Device(cmd) => manage::device(&config, cmd).await.map(Some),
            Command::TopicPolicy(cmd) => manage::topic_policy(&config, cmd).await.map(Some),
            Command::Rule(cmd) => rule::run(&config, cmd).await.map(Some),
            Command::Dlq(cmd) => dlq::run(&config, cmd).await.map(Some),
            Command::Firmware(cmd) => ota::firmware(&config, cmd).await.map(Some),
            Command::Ota(cmd) => ota::run(&config, cmd).await.map(Some),
            Command::Group(cmd) => group::run(&config, cmd).await.map(Some),
            Command::Logs(cmd) => logs::run(&config, cmd).await.map(Some),
            Command::Config(ConfigCommand::Default) | Command::Passwd(_) | Command::Cert(_) => {
                Ok(None)
            }
        }
    });
    match result {
        Ok(Some(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("eddy: {err:#}");
            ExitCode::FAILURE
        }
    }
}
