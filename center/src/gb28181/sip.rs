//! The SIP side, on rsipstack (its transports, transactions and digest authentication): one
//! endpoint listening on UDP and TCP; REGISTER with digest to a platform, and `MESSAGE`
//! requests to it, each answered or failed within [`ANSWER_WITHIN`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::authenticate::{Credential, handle_client_authenticate};
use rsipstack::dialog::registration::Registration;
use rsipstack::sip::prelude::HeadersExt;
use rsipstack::sip::{Header, Host, Method, Request, SipMessage, StatusCode, StatusCodeKind, Uri};
use rsipstack::transaction::endpoint::{EndpointInnerRef, EndpointOption};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::{Endpoint, EndpointBuilder, Transaction, TransactionReceiver};
use rsipstack::transport::udp::UdpConnection;
use rsipstack::transport::{SipAddr, SipConnection, TcpListenerConnection, TransportLayer};
use tokio_util::sync::CancellationToken;

use super::mapping::{CenterIdentity, Platform, Transport};

/// How long a request waits for its final answer (SIP over UDP resends it meanwhile).
pub const ANSWER_WITHIN: Duration = Duration::from_secs(8);

/// The media type of MANSCDP bodies.
pub const MANSCDP: &str = "Application/MANSCDP+xml";

/// Why a request to a platform failed.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// No final answer within [`ANSWER_WITHIN`], or the transport failed.
    #[error("no answer from {0}")]
    NoAnswer(String),
    /// The platform answered with an error.
    #[error("{0} answered {1}")]
    Refused(String, String),
    /// The stack failed.
    #[error("SIP: {0}")]
    Stack(String),
}

impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        Self::Stack(e.to_string())
    }
}

/// The center's SIP endpoint.
pub struct Sip {
    endpoint: Endpoint,
    center: CenterIdentity,
}

impl Sip {
    /// Listens on the center's address (UDP and TCP) until `stop`; the endpoint and the
    /// requests platforms send.
    pub async fn bind(
        center: &CenterIdentity,
        stop: &CancellationToken,
    ) -> Result<(Arc<Self>, TransactionReceiver), SipError> {
        let transport = TransportLayer::new(stop.child_token());
        let udp = UdpConnection::create_connection(
            center.listen,
            center.address,
            Some(stop.child_token()),
        )
        .await?;
        transport.add_transport(udp.into());
        let tcp = TcpListenerConnection::new(center.listen, center.address).await?;
        transport.add_transport(tcp.into());
        // Call-IDs end with the center's domain, as GB/T 28181 peers' own do.
        let option =
            EndpointOption { callid_suffix: Some(center.domain.clone()), ..Default::default() };
        let endpoint = EndpointBuilder::new()
            .with_option(option)
            .with_user_agent(concat!("xueliang/", env!("CARGO_PKG_VERSION")))
            .with_transport_layer(transport)
            .with_cancel_token(stop.child_token())
            .build();
        let incoming = endpoint.incoming_transactions()?;
        let sip = Arc::new(Self { endpoint, center: center.clone() });
        let serving = sip.clone();
        tokio::spawn(async move { serving.endpoint.serve().await });
        Ok((sip, incoming))
    }

    fn inner(&self) -> &EndpointInnerRef {
        &self.endpoint.inner
    }

    /// Where `platform` is, with its transport.
    fn destination(platform: &Platform) -> SipAddr {
        let mut addr = SipAddr::from(platform.address);
        addr.r#type = Some(match platform.transport {
            Transport::Udp => rsipstack::sip::Transport::Udp,
            Transport::Tcp => rsipstack::sip::Transport::Tcp,
        });
        addr
    }

    /// `sip:{id}@{domain}`.
    fn uri(id: &str, domain: &str) -> Result<Uri, SipError> {
        Ok(Uri::try_from(format!("sip:{id}@{domain}").as_str())
            .map_err(rsipstack::Error::SipMessageError)?)
    }

    fn credential(&self, platform: &Platform) -> Credential {
        Credential {
            username: self.center.id.clone(),
            password: platform.password.clone(),
            realm: None,
            auth_username: None,
        }
    }

    /// A new registration with `platform` (one Call-ID, refreshed by [`Sip::register`]).
    pub fn registration(&self, platform: &Platform) -> Result<Registration, SipError> {
        let mut r = Registration::new(self.inner().clone(), Some(self.credential(platform)));
        r.outbound_proxy = Some(platform.address);
        // From and To are the center's address of record, without the transport the
        // request-URI carries.
        let me = Self::uri(&self.center.id, &self.center.domain)?;
        let from =
            rsipstack::sip::typed::From { display_name: None, uri: me.clone(), params: vec![] }
                .with_tag(rsipstack::transaction::make_tag());
        let to = rsipstack::sip::typed::To { display_name: None, uri: me, params: vec![] };
        r.extra_headers = vec![Header::From(from.into()), Header::To(to.into())];
        Ok(r)
    }

    /// REGISTERs (or refreshes, or with `expires` 0 ends) `registration` with `platform`,
    /// answering its digest challenge; the lifetime it granted.
    pub async fn register(
        &self,
        registration: &mut Registration,
        platform: &Platform,
        expires: u32,
    ) -> Result<Duration, SipError> {
        let transport = platform.transport.name();
        let server = Uri::try_from(
            format!("sip:{}@{};transport={transport}", platform.id, platform.domain).as_str(),
        )
        .map_err(rsipstack::Error::SipMessageError)?;
        let answer =
            tokio::time::timeout(ANSWER_WITHIN, registration.register(server, Some(expires)))
                .await
                .map_err(|_| SipError::NoAnswer(platform.name.clone()))?
                .map_err(|e| SipError::NoAnswer(format!("{}: {e}", platform.name)))?;
        if answer.status_code != StatusCode::OK {
            return Err(SipError::Refused(platform.name.clone(), answer.status_code.to_string()));
        }
        Ok(Duration::from_secs(registration.expires().into()))
    }

    /// Sends a `MESSAGE` with `body` (MANSCDP, already in the platform's character set) to
    /// `platform`, answering a digest challenge if it makes one; `Ok` once it answers 2xx.
    pub async fn message(&self, platform: &Platform, body: Vec<u8>) -> Result<(), SipError> {
        let to = Self::uri(&platform.id, &platform.domain)?;
        let from = rsipstack::sip::typed::From {
            display_name: None,
            uri: Self::uri(&self.center.id, &self.center.domain)?,
            params: vec![],
        }
        .with_tag(rsipstack::transaction::make_tag());
        let to_header =
            rsipstack::sip::typed::To { display_name: None, uri: to.clone(), params: vec![] };
        let headers = vec![Header::From(from.into()), Header::To(to_header.into())];
        self.send(platform, Method::Message, to, None, 1, headers, body).await
    }

    /// Sends a `NOTIFY` with `body` in the subscription `dialog` of `platform`, which lasts
    /// `expires_in` more.
    pub async fn notify(
        &self,
        platform: &Platform,
        dialog: &Dialog,
        expires_in: Duration,
        body: Vec<u8>,
    ) -> Result<(), SipError> {
        let headers = vec![
            Header::From(dialog.local.as_str().into()),
            Header::To(dialog.remote.as_str().into()),
            Header::Event(dialog.event.as_str().into()),
            Header::SubscriptionState(
                format!("active;expires={}", expires_in.as_secs()).as_str().into(),
            ),
        ];
        let call_id = Some(dialog.call_id.as_str().into());
        let (target, cseq) = (dialog.target.clone(), dialog.cseq);
        self.send(platform, Method::Notify, target, call_id, cseq, headers, body).await
    }

    /// Sends request `method` to `uri` at `platform` with `headers` (From and To among them)
    /// and the MANSCDP `body`, in a client transaction; `Ok` once it answers 2xx.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        platform: &Platform,
        method: Method,
        uri: Uri,
        call_id: Option<rsipstack::sip::CallId>,
        cseq: u32,
        headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Result<(), SipError> {
        let destination = Self::destination(platform);
        let (connection, _) = self.inner().transport_layer.lookup(&destination, None).await?;
        let via = self.inner().get_via(Some(connection.get_addr().clone()), None)?;
        // make_request wants From and To; those in `headers` take their places.
        let me = Self::uri(&self.center.id, &self.center.domain)?;
        let from =
            rsipstack::sip::typed::From { display_name: None, uri: me.clone(), params: vec![] };
        let to = rsipstack::sip::typed::To { display_name: None, uri: me, params: vec![] };
        let mut request: Request =
            self.inner().make_request(method, uri, via, from, to, cseq, call_id);
        request.headers.retain(|h| !matches!(h, Header::From(_) | Header::To(_)));
        request.headers.extend(headers);
        request.headers.push(Header::ContentType(MANSCDP.into()));
        request.body = body;
        let name = platform.name.clone();
        let send = async {
            let key = TransactionKey::from_request(&request, TransactionRole::Client)?;
            let mut tx =
                Transaction::new_client(key, request, self.inner().clone(), Some(connection));
            tx.destination = Some(destination);
            tx.send().await?;
            let mut challenged = false;
            while let Some(msg) = tx.receive().await {
                let SipMessage::Response(resp) = msg else { continue };
                match resp.status_code {
                    StatusCode::Unauthorized | StatusCode::ProxyAuthenticationRequired
                        if !challenged =>
                    {
                        challenged = true;
                        let cred = self.credential(platform);
                        tx = handle_client_authenticate(cseq + 1, &tx, resp, &cred).await?;
                        tx.send().await?;
                    }
                    code if code.kind() == StatusCodeKind::Provisional => {}
                    code if code.kind() == StatusCodeKind::Successful => return Ok(()),
                    code => return Err(SipError::Refused(name.clone(), code.to_string())),
                }
            }
            Err(SipError::NoAnswer(name.clone()))
        };
        match tokio::time::timeout(ANSWER_WITHIN, send).await {
            Ok(Err(SipError::Stack(e))) => Err(SipError::NoAnswer(format!("{name}: {e}"))),
            Ok(outcome) => outcome,
            Err(_) => Err(SipError::NoAnswer(name)),
        }
    }
}

/// A subscription's dialog, as a platform opened it with `SUBSCRIBE` and the center accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    /// Its Call-ID.
    pub call_id: String,
    /// The center's end: the SUBSCRIBE's To, with the tag the center's 200 gave it.
    pub local: String,
    /// The platform's end: the SUBSCRIBE's From, with its tag.
    pub remote: String,
    /// Where NOTIFYs go: the SUBSCRIBE's Contact.
    pub target: Uri,
    /// The event package, as the SUBSCRIBE named it.
    pub event: String,
    /// The CSeq of the center's next NOTIFY in it.
    pub cseq: u32,
}

impl Dialog {
    /// The dialog `subscribe` (a SUBSCRIBE the center answered 200) opened.
    pub fn of(subscribe: &Request) -> Option<Self> {
        let event = subscribe.headers.iter().find_map(|h| match h {
            Header::Event(e) => Some(e.value().to_owned()),
            _ => None,
        });
        let target = subscribe.typed_contact_headers().ok()?.into_iter().next()?.uri;
        Some(Self {
            call_id: subscribe.call_id_header().ok()?.value().to_owned(),
            local: subscribe.to_header().ok()?.value().to_owned(),
            remote: subscribe.from_header().ok()?.value().to_owned(),
            target,
            event: event.unwrap_or_else(|| "presence".to_owned()),
            cseq: 1,
        })
    }
}

/// The user part of the From header of `request`: who it says sent it.
pub fn sender(request: &Request) -> Option<String> {
    request.from_header().ok()?.uri().ok()?.auth.map(|a| a.user)
}

/// The IP address `request` came from: its top Via, as the transport corrected it with the
/// address the request really arrived from (`received`).
pub fn source(request: &Request) -> Option<IpAddr> {
    let (_, from) = SipConnection::parse_target_from_via(request.via_header().ok()?).ok()?;
    match from.host {
        Host::IpAddr(ip) => Some(ip),
        Host::Domain(_) => None,
    }
}
