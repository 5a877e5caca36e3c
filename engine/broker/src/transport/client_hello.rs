//! Just enough of a TLS ClientHello to route it: does the client offer a PSK key exchange?
//!
//! TLS-PSK clients (Tencent's C SDK on mbedTLS, `mosquitto_pub --psk`, OpenSSL with a PSK
//! callback) list TLS 1.2 PSK cipher suites; certificate clients do not (OpenSSL drops
//! them when no PSK callback is set). So the listener reads the first record, looks at the
//! cipher suites, and hands the connection to OpenSSL (PSK) or rustls (certificates).

use tokio::io::{AsyncRead, AsyncReadExt as _};

/// A TLS record header is 5 bytes; a ClientHello record is at most 2^14 + 5.
const RECORD_HEADER: usize = 5;
const MAX_RECORD: usize = (1 << 14) + 2048;

/// Reads the first TLS record of `stream`. Returns the bytes read (all of them, to be
/// replayed) and whether it is a ClientHello offering a PSK suite.
pub(super) async fn read_first_record<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = vec![0u8; RECORD_HEADER];
    stream.read_exact(&mut buf).await?;
    if buf[0] != 0x16 {
        // Not a handshake record: let the TLS library say what is wrong with it.
        return Ok((buf, false));
    }
    let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
    if len > MAX_RECORD {
        return Ok((buf, false));
    }
    buf.resize(RECORD_HEADER + len, 0);
    stream.read_exact(&mut buf[RECORD_HEADER..]).await?;
    let psk = offers_psk(&buf[RECORD_HEADER..]).unwrap_or(false);
    Ok((buf, psk))
}

/// Whether a ClientHello handshake message (starting at its handshake header) lists a
/// PSK cipher suite; `None` when it is cut short or not a ClientHello.
fn offers_psk(hs: &[u8]) -> Option<bool> {
    if *hs.first()? != 1 {
        return Some(false);
    }
    // type(1) length(3) version(2) random(32)
    let mut at = 1 + 3 + 2 + 32;
    let session_len = usize::from(*hs.get(at)?);
    at += 1 + session_len;
    let suites_len = usize::from(u16::from_be_bytes([*hs.get(at)?, *hs.get(at + 1)?]));
    at += 2;
    let suites = hs.get(at..at + suites_len)?;
    Some(
        suites
            .chunks_exact(2)
            .any(|s| is_psk_suite(u16::from_be_bytes([s[0], s[1]]))),
    )
}

/// TLS 1.2 cipher suites with a PSK key exchange (IANA registry: PSK, DHE_PSK, RSA_PSK,
/// ECDHE_PSK, in CBC, GCM, CCM, CCM_8, ARIA, Camellia, ChaCha20 and NULL forms).
fn is_psk_suite(suite: u16) -> bool {
    matches!(suite,
        0x008A..=0x0095
        | 0x00A8..=0x00B9
        | 0xC034..=0xC03B
        | 0xC064..=0xC071
        | 0xC08E..=0xC09B
        | 0xC0A4..=0xC0AB
        | 0xCCAB..=0xCCAE
        | 0xD001..=0xD005)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_hello(suites: &[u16]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(0); // no session id
        let suite_bytes: Vec<u8> = suites.iter().flat_map(|s| s.to_be_bytes()).collect();
        body.extend(u16::try_from(suite_bytes.len()).unwrap().to_be_bytes());
        body.extend(suite_bytes);
        body.extend([1, 0]); // compression: null
        let mut hs = vec![1, 0];
        hs.extend(u16::try_from(body.len()).unwrap().to_be_bytes());
        hs.extend(body);
        let mut record = vec![0x16, 0x03, 0x01];
        record.extend(u16::try_from(hs.len()).unwrap().to_be_bytes());
        record.extend(hs);
        record
    }

    #[tokio::test]
    async fn routes_psk_and_certificate_clients() {
        // Tencent's C SDK: TLS_PSK_WITH_AES_128_CBC_SHA only.
        let hello = client_hello(&[0x008C]);
        let (read, psk) = read_first_record(&mut &hello[..]).await.unwrap();
        assert!(psk);
        assert_eq!(read, hello, "every byte read is kept for the TLS library");
        // A browser-like certificate client: ECDHE suites and TLS 1.3 suites.
        let (_, psk) = read_first_record(&mut &client_hello(&[0x1301, 0xC02B, 0xC02F])[..])
            .await
            .unwrap();
        assert!(!psk);
        // ECDHE-PSK with ChaCha20 and PSK-AES256-CBC-SHA among others.
        for suite in [0x008D, 0xCCAC, 0x00A8, 0xC0A8] {
            let (_, psk) = read_first_record(&mut &client_hello(&[0xC02B, suite])[..])
                .await
                .unwrap();
            assert!(psk, "{suite:#06x}");
        }
    }

    #[tokio::test]
    async fn odd_input_is_not_psk() {
        let (read, psk) = read_first_record(&mut &b"\x10\x0c\x00\x04MQTT"[..])
            .await
            .unwrap();
        assert!(!psk);
        assert_eq!(read.len(), RECORD_HEADER);
        // A handshake record cut inside the suite list.
        let mut hello = client_hello(&[0x008C]);
        let cut = hello.len() - 4;
        hello[4] = u8::try_from(cut - RECORD_HEADER).unwrap();
        hello.truncate(cut);
        assert!(!read_first_record(&mut &hello[..]).await.unwrap().1);
        assert!(read_first_record(&mut &b"\x16\x03"[..]).await.is_err());
    }
}
