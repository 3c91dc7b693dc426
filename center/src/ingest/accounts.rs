//! Boxes' accounts at a Mosquitto broker with its dynamic-security plugin, kept by the center:
//! at enrolment a box gets a login bound to its own client id and a role that lets it publish
//! only on its own topics (alarms, updates, snapshots, clip chunks, status, health, config
//! answers) and read only its own receipts and config and the center's status; a
//! second login, with no topic at all, lets its `xl-agent doctor` check the password without
//! throwing the running agent off. Removing a box deletes both (the broker disconnects it).
//! The center's own role may use every topic under the prefix.
//!
//! Commands go over a short connection of their own (`$CONTROL/dynamic-security/v1`), apart
//! from ingest's persistent session, and each batch waits for the plugin's answer.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{Value, json};
use xueliang_proto::topics::{Topics, agent_client_id, doctor_login};
use xueliang_service::tls::TlsError;

use super::BrokerConnection;

/// The plugin's command topic.
const COMMANDS: &str = "$CONTROL/dynamic-security/v1";
/// Where it answers.
const RESPONSES: &str = "$CONTROL/dynamic-security/v1/response";
/// How long a batch of commands may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
/// The role of the center's own login.
const CENTER_ROLE: &str = "xl-center";

/// Why the broker's accounts could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// No answer in time.
    #[error(
        "the broker's dynamic-security plugin did not answer within {} s: load it in Mosquitto (deploy/mosquitto/xueliang.conf) and make the center's login its admin (mosquitto_ctrl dynsec init)",
        ANSWER_WITHIN.as_secs()
    )]
    NoAnswer,
    /// The plugin refused a command.
    #[error("the broker refused {command}: {error}")]
    Refused {
        /// The command.
        command: String,
        /// The plugin's reason.
        error: String,
    },
    /// The connection failed.
    #[error("the broker's accounts: {0}")]
    Connection(String),
    /// The TLS files could not be read.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The center's hand on the broker's accounts.
#[derive(Debug, Clone)]
pub struct BrokerAccounts {
    conn: BrokerConnection,
    topics: Topics,
    /// One change at a time: two enrolments must not interleave their commands, nor throw
    /// each other's connection off (they share a client id).
    one_at_a_time: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl BrokerAccounts {
    /// Accounts at the broker `conn` reaches (its login must be the plugin's admin), for
    /// topics under `topics`' prefix.
    pub fn new(conn: BrokerConnection, topics: Topics) -> Self {
        Self { conn, topics, one_at_a_time: Default::default() }
    }

    /// Gives the center's login its role (every topic under the prefix) and denies, by default,
    /// whatever a role does not allow. Run at every start; changes something only the first
    /// time, because the broker disconnects a login whose roles change.
    pub async fn prepare(&self) -> Result<(), AccountsError> {
        let _one = self.one_at_a_time.lock().await;
        let login = self.conn.credentials.as_ref().map_or("", |(u, _)| u.as_str());
        if self.center_ready(login).await? {
            return Ok(());
        }
        let all = format!("{}/#", self.topics.prefix());
        let acls: Vec<Value> = ["publishClientSend", "publishClientReceive", "subscribePattern"]
            .iter()
            .map(|t| json!({"acltype": t, "topic": all, "allow": true}))
            .collect();
        let commands = vec![
            json!({"command": "deleteRole", "rolename": CENTER_ROLE}),
            json!({"command": "createRole", "rolename": CENTER_ROLE, "acls": acls}),
            json!({"command": "setDefaultACLAccess", "acls": [
                {"acltype": "publishClientSend", "allow": false},
                {"acltype": "publishClientReceive", "allow": false},
                {"acltype": "subscribe", "allow": false},
            ]}),
            // Last: the broker disconnects us on it, so its answer may never come.
            json!({"command": "addClientRole", "username": login, "rolename": CENTER_ROLE}),
        ];
        let answers = self.exchange(&commands, true).await?;
        check(&commands, &answers, &["Role not found"])?;
        if self.center_ready(login).await? {
            Ok(())
        } else {
            Err(AccountsError::Refused {
                command: describe(commands.last()),
                error: "the center's login did not get its role".into(),
            })
        }
    }

    /// Whether the center's `login` has its role and the defaults deny.
    async fn center_ready(&self, login: &str) -> Result<bool, AccountsError> {
        let commands = vec![
            json!({"command": "getClient", "username": login}),
            json!({"command": "getRole", "rolename": CENTER_ROLE}),
            json!({"command": "getDefaultACLAccess"}),
        ];
        let answers = self.exchange(&commands, false).await?;
        check(&commands, &answers, &["Role not found"])?;
        let has_role = answers[0]["data"]["client"]["roles"]
            .as_array()
            .is_some_and(|roles| roles.iter().any(|r| r["rolename"] == CENTER_ROLE));
        // For this prefix: a changed --topic-prefix needs the role made again.
        let all = format!("{}/#", self.topics.prefix());
        let role_exists = answers[1]["data"]["role"]["acls"]
            .as_array()
            .is_some_and(|acls| acls.iter().any(|a| a["topic"] == all.as_str()));
        let denies = answers[2]["data"]["acls"].as_array().is_some_and(|acls| {
            acls.iter().all(|a| a["acltype"] == "unsubscribe" || a["allow"] == false)
        });
        Ok(has_role && role_exists && denies)
    }

    /// Creates (or replaces) agent `agent`'s logins with `password`: the agent's, bound to its
    /// client id, with its own topics; its doctor's, with none. A login of that name that is
    /// not a box's is refused, never replaced.
    pub async fn admit(&self, agent: &str, password: &str) -> Result<(), AccountsError> {
        let _one = self.one_at_a_time.lock().await;
        self.refuse_foreign(agent).await?;
        let t = &self.topics;
        let mut acls = Vec::new();
        for topic in [
            t.alarm(agent),
            t.event(agent),
            t.snapshot(agent),
            t.clip(agent),
            t.status(agent),
            t.health(agent),
            t.config_ack(agent),
        ] {
            acls.push(json!({"acltype": "publishClientSend", "topic": topic, "allow": true}));
        }
        for topic in [t.receipt(agent), t.config(agent), t.center_status()] {
            acls.push(json!({"acltype": "subscribeLiteral", "topic": topic, "allow": true}));
            acls.push(json!({"acltype": "publishClientReceive", "topic": topic, "allow": true}));
        }
        let role = agent_client_id(agent);
        let doctor = doctor_login(agent);
        let mut commands = removal(agent);
        commands.extend([
            json!({"command": "createRole", "rolename": role, "acls": acls}),
            json!({"command": "createClient", "username": agent, "password": password,
                   "clientid": agent_client_id(agent), "roles": [{"rolename": role}]}),
            json!({"command": "createClient", "username": doctor, "password": password,
                   "clientid": agent_client_id(&doctor)}),
        ]);
        let answers = self.exchange(&commands, false).await?;
        check(&commands, &answers, &["Client not found", "Role not found"])
    }

    /// Deletes agent `agent`'s logins and role (the broker disconnects it); a login of that
    /// name that is not a box's is left alone, with an error.
    pub async fn remove(&self, agent: &str) -> Result<(), AccountsError> {
        let _one = self.one_at_a_time.lock().await;
        self.refuse_foreign(agent).await?;
        let commands = removal(agent);
        let answers = self.exchange(&commands, false).await?;
        check(&commands, &answers, &["Client not found", "Role not found"])
    }

    /// An error if the broker has a login named as agent `agent`'s, or its doctor's, that is
    /// not a box's (the center's own, a unit's made by hand): such a login is never replaced.
    async fn refuse_foreign(&self, agent: &str) -> Result<(), AccountsError> {
        let doctor = doctor_login(agent);
        let lookup = vec![
            json!({"command": "getClient", "username": agent}),
            json!({"command": "getClient", "username": doctor}),
        ];
        let answers = self.exchange(&lookup, false).await?;
        check(&lookup, &answers, &["Client not found"])?;
        for (answer, expected) in answers.iter().zip([Some(agent_client_id(agent)), None]) {
            let client = &answer["data"]["client"];
            if client.is_null() {
                continue;
            }
            let roles: Vec<&str> = client["roles"]
                .as_array()
                .map(|r| r.iter().filter_map(|r| r["rolename"].as_str()).collect())
                .unwrap_or_default();
            let a_box = match &expected {
                Some(role) => roles == [role.as_str()],
                None => roles.is_empty(),
            };
            if !a_box {
                return Err(AccountsError::Refused {
                    command: describe(lookup.first()),
                    error: format!(
                        "the broker has a login {:?} that is not a box's: choose another agent id",
                        client["username"].as_str().unwrap_or(agent)
                    ),
                });
            }
        }
        Ok(())
    }

    /// Sends `commands` in one batch and returns the plugin's answers, one per command; none
    /// if `kicked` says the broker may disconnect us for them (and it did).
    async fn exchange(
        &self,
        commands: &[Value],
        kicked: bool,
    ) -> Result<Vec<Value>, AccountsError> {
        let conn = &self.conn;
        // Of this process: another center on the same broker must not throw this one off.
        let id = format!("xl-center-accounts-{}", std::process::id());
        let mut opts = super::connection::options(conn, id)?;
        opts.set_clean_session(true);
        let payload = json!({ "commands": commands }).to_string();
        let mut sent = false;
        let (client, mut events) = AsyncClient::new(opts, 10);
        let exchange = async {
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        client
                            .subscribe(RESPONSES, QoS::AtLeastOnce)
                            .await
                            .map_err(|e| AccountsError::Connection(e.to_string()))?;
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if ack
                            .return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        {
                            return Err(AccountsError::Refused {
                                command: format!("the subscription to {RESPONSES}"),
                                error: "not the plugin's admin".into(),
                            });
                        }
                        client
                            .publish(COMMANDS, QoS::AtLeastOnce, false, payload.clone())
                            .await
                            .map_err(|e| AccountsError::Connection(e.to_string()))?;
                        sent = true;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == RESPONSES => {
                        return Ok(Some(p.payload));
                    }
                    Ok(_) => {}
                    Err(_) if kicked && sent => return Ok(None),
                    Err(e) => return Err(AccountsError::Connection(e.to_string())),
                }
            }
        };
        let answer = tokio::time::timeout(ANSWER_WITHIN, exchange).await;
        let _ = client.disconnect().await;
        let Some(answer) = answer.map_err(|_| AccountsError::NoAnswer)?? else {
            return Ok(Vec::new());
        };
        let answer: Value = serde_json::from_slice(&answer)
            .map_err(|e| AccountsError::Connection(format!("an answer that is not JSON: {e}")))?;
        let answers = answer["responses"].as_array().cloned().unwrap_or_default();
        if answers.len() != commands.len() {
            return Err(AccountsError::Connection(format!(
                "{} answers to {} commands",
                answers.len(),
                commands.len()
            )));
        }
        Ok(answers)
    }
}

/// The first error among `answers` to `commands` whose text is not in `tolerated` (deleting
/// what is not there, say).
fn check(commands: &[Value], answers: &[Value], tolerated: &[&str]) -> Result<(), AccountsError> {
    for (i, answer) in answers.iter().enumerate() {
        if let Some(error) = answer["error"].as_str()
            && !tolerated.contains(&error)
        {
            return Err(AccountsError::Refused {
                command: describe(commands.get(i)),
                error: error.to_owned(),
            });
        }
    }
    Ok(())
}

/// The commands that delete agent `agent`'s logins and role.
fn removal(agent: &str) -> Vec<Value> {
    vec![
        json!({"command": "deleteClient", "username": agent}),
        json!({"command": "deleteClient", "username": doctor_login(agent)}),
        json!({"command": "deleteRole", "rolename": agent_client_id(agent)}),
    ]
}

/// A command as an error names it: `createClient (of village-7)`.
fn describe(command: Option<&Value>) -> String {
    let Some(c) = command else { return "a command".into() };
    let name = c["command"].as_str().unwrap_or("a command");
    match c["username"].as_str().or_else(|| c["rolename"].as_str()) {
        Some(of) => format!("{name} (of {of})"),
        None => name.to_owned(),
    }
}
