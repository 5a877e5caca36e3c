//! eddy-handshakes: authenticated connections per second over TLS (server certificate +
//! HMAC password), TLS-PSK (Tencent's C SDK suite) and DTLS-PSK (CoAP authentication), and
//! plain TCP as the baseline.
//!
//! Each of `--concurrency` workers connects as its own device (`${device-prefix}${i}`, all
//! with the key `--psk`), completes the transport handshake and the protocol's
//! authentication (MQTT CONNECT → CONNACK accepted; CoAP auth → 2.05 with a token), closes,
//! and starts again until `--duration` is over. Full handshakes only: no resumption.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::{Parser, ValueEnum};
use coap_lite::{CoapOption, MessageClass, MessageType, Packet, RequestType, ResponseType};
use eddy_benches::{TencentLogin, connect_packet, tencent_login};
use hdrhistogram::Histogram;
use openssl::ssl::{Ssl, SslConnector, SslMethod, SslOptions, SslVersion};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    /// Plain TCP + MQTT CONNECT with the HMAC password (the baseline).
    Tcp,
    /// TLS with the server's certificate + MQTT CONNECT with the HMAC password.
    Tls,
    /// TLS 1.2 PSK (PSK-AES128-CBC-SHA, Tencent's C SDK) + MQTT CONNECT without password.
    TlsPsk,
    /// DTLS 1.2 PSK (PSK-AES128-CBC-SHA) + CoAP authentication.
    Dtls,
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Authenticated handshakes per second: TLS, TLS-PSK, DTLS-PSK"
)]
struct Args {
    #[arg(long, value_enum)]
    mode: Mode,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    #[arg(long)]
    product_id: String,
    /// Worker i connects as device `${device-prefix}${i}`.
    #[arg(long, default_value = "hs")]
    device_prefix: String,
    /// The devices' PSK (base64), the same for all.
    #[arg(long)]
    psk: String,
    /// The CA that signed the server certificate (tls mode).
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Sends CONNECT and checks the CONNACK accepts it.
async fn mqtt_connect<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    connect: &[u8],
) -> Result<(), Error> {
    stream.write_all(connect).await?;
    stream.flush().await?;
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).await?;
    if ack[0] != 0x20 || ack[3] != 0 {
        return Err(format!("CONNACK refused: {ack:?}").into());
    }
    Ok(())
}

struct Device {
    /// The OpenSSL client context of the PSK modes.
    psk: Option<SslConnector>,
    client_id: String,
    username: String,
    password: String,
    key: Vec<u8>,
    device_name: String,
}

fn device(args: &Args, i: usize) -> Result<Device, Error> {
    let device_name = format!("{}{i}", args.device_prefix);
    let key = BASE64.decode(&args.psk)?;
    let TencentLogin {
        client_id,
        username,
        password,
    } = tencent_login(&args.product_id, &device_name, &key);
    let mut device = Device {
        psk: None,
        client_id,
        username,
        password,
        key,
        device_name,
    };
    device.psk = match args.mode {
        Mode::TlsPsk => Some(psk_connector(
            SslMethod::tls_client(),
            SslVersion::TLS1_2,
            &device,
        )?),
        Mode::Dtls => Some(psk_connector(
            SslMethod::dtls_client(),
            SslVersion::DTLS1_2,
            &device,
        )?),
        Mode::Tcp | Mode::Tls => None,
    };
    Ok(device)
}

/// One authenticated connection, start to finish.
async fn once(
    args: &Args,
    addr: SocketAddr,
    device: &Device,
    rustls: &tokio_rustls::TlsConnector,
) -> Result<(), Error> {
    match args.mode {
        Mode::Tcp => {
            let mut tcp = tcp(addr).await?;
            let connect = connect_packet(
                &device.client_id,
                Some(&device.username),
                Some(&device.password),
                60,
            );
            mqtt_connect(&mut tcp, &connect).await
        }
        Mode::Tls => {
            let tcp = tcp(addr).await?;
            let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
            let mut tls = rustls.connect(name, tcp).await?;
            let connect = connect_packet(
                &device.client_id,
                Some(&device.username),
                Some(&device.password),
                60,
            );
            mqtt_connect(&mut tls, &connect).await
        }
        Mode::TlsPsk => {
            let tcp = tcp(addr).await?;
            let ssl = psk_ssl(device.psk.as_ref().ok_or("no PSK context")?)?;
            let mut tls = tokio_openssl::SslStream::new(ssl, tcp)?;
            Pin::new(&mut tls).connect().await?;
            let connect = connect_packet(&device.client_id, Some(&device.username), None, 60);
            mqtt_connect(&mut tls, &connect).await
        }
        Mode::Dtls => {
            let udp = UdpSocket::bind("127.0.0.1:0").await?;
            udp.connect(addr).await?;
            let mut ssl = psk_ssl(device.psk.as_ref().ok_or("no PSK context")?)?;
            ssl.set_mtu(1200)?;
            let mut dtls = tokio_openssl::SslStream::new(ssl, Connected(udp))?;
            Pin::new(&mut dtls).connect().await?;
            let mut auth = Packet::new();
            auth.header.set_type(MessageType::Confirmable);
            auth.header.code = MessageClass::Request(RequestType::Post);
            auth.header.message_id = rand_mid();
            auth.set_token(vec![0, 0, 0, 0]);
            let path = format!("{}/{}/txauth9w0BAQsFA", args.product_id, device.device_name);
            auth.add_option(CoapOption::UriPath, path.into_bytes());
            auth.add_option(CoapOption::Unknown(62), b"0".to_vec());
            auth.payload = b"21010406;bench".to_vec();
            dtls.write_all(&auth.to_bytes()?).await?;
            let mut buf = [0u8; 512];
            let n = dtls.read(&mut buf).await?;
            let answer = Packet::from_bytes(&buf[..n])?;
            if answer.header.code != MessageClass::Response(ResponseType::Content) {
                return Err(format!("CoAP auth answered {}", answer.header.code).into());
            }
            Ok(())
        }
    }
}

/// A TCP connection without Nagle's delay (as devices' SDKs and the hub set it): the TLS
/// client's last flight and the CONNECT would otherwise wait for a delayed ACK.
async fn tcp(addr: SocketAddr) -> Result<TcpStream, Error> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// CoAP message ids: a new one per request.
fn rand_mid() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// An OpenSSL client context with the device's PSK and Tencent's C SDK suite (built once
/// per worker: building one loads the system's CA store).
fn psk_connector(
    method: SslMethod,
    version: SslVersion,
    device: &Device,
) -> Result<SslConnector, Error> {
    let mut builder = SslConnector::builder(method)?;
    builder.set_cipher_list("PSK-AES128-CBC-SHA")?;
    builder.set_max_proto_version(Some(version))?;
    builder.set_options(SslOptions::NO_QUERY_MTU | SslOptions::NO_TICKET);
    let (identity, key) = (device.client_id.clone(), device.key.clone());
    builder.set_psk_client_callback(move |_, _hint, id_out, key_out| {
        let id = identity.as_bytes();
        if id.len() >= id_out.len() || key.len() > key_out.len() {
            return Ok(0);
        }
        id_out[..id.len()].copy_from_slice(id);
        id_out[id.len()] = 0;
        key_out[..key.len()].copy_from_slice(&key);
        Ok(key.len())
    });
    Ok(builder.build())
}

/// A session from `connector` (PSK: no server certificate, no host name to check).
fn psk_ssl(connector: &SslConnector) -> Result<Ssl, Error> {
    let mut config = connector.configure()?;
    config.set_verify_hostname(false);
    Ok(config.into_ssl("localhost")?)
}

/// A connected UDP socket as a stream: one datagram per read and per write.
struct Connected(UdpSocket);

impl AsyncRead for Connected {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.0.poll_recv(cx, buf)
    }
}

impl AsyncWrite for Connected {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.poll_send(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn rustls_connector(args: &Args) -> Result<tokio_rustls::TlsConnector, Error> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &args.ca {
        use rustls::pki_types::pem::PemObject as _;
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)? {
            roots.add(cert?)?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // Every connection a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Arc::new(Args::parse());
    let addr: SocketAddr = tokio::net::lookup_host((args.host.as_str(), args.port))
        .await?
        .next()
        .ok_or("the host has no address")?;
    let rustls = rustls_connector(&args)?;
    let started = Instant::now();
    let deadline = started + args.duration;
    let mut workers = Vec::new();
    for i in 0..args.concurrency.max(1) {
        let (args, rustls) = (args.clone(), rustls.clone());
        workers.push(tokio::spawn(async move {
            let device = device(&args, i)?;
            let mut latency = Histogram::<u64>::new(3)?;
            let (mut ok, mut failed, mut last_error) = (0u64, 0u64, None);
            while Instant::now() < deadline {
                let t = Instant::now();
                match once(&args, addr, &device, &rustls).await {
                    Ok(()) => {
                        ok += 1;
                        latency
                            .record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX))?;
                    }
                    Err(err) => {
                        failed += 1;
                        last_error = Some(err.to_string());
                    }
                }
            }
            Ok::<_, Error>((ok, failed, last_error, latency))
        }));
    }
    let mut total = Histogram::<u64>::new(3)?;
    let (mut ok, mut failed, mut last_error) = (0, 0, None);
    for worker in workers {
        let (o, f, e, h) = worker.await??;
        ok += o;
        failed += f;
        last_error = last_error.or(e);
        total.add(h)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let per_sec = ok as f64 / secs;
    let ms = |q: f64| total.value_at_quantile(q) as f64 / 1000.0;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "mode": format!("{:?}", args.mode), "concurrency": args.concurrency,
                "seconds": secs, "ok": ok, "failed": failed, "per_sec": per_sec,
                "p50_ms": ms(0.5), "p99_ms": ms(0.99), "last_error": last_error,
            })
        );
    } else {
        println!(
            "{:?}: {ok} authenticated handshakes in {secs:.1} s = {per_sec:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {failed} failed{}",
            args.mode,
            ms(0.5),
            ms(0.99),
            last_error
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}
