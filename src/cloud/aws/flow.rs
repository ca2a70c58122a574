//! The AWS backend's actions (issue 13), one flow per mode (`config::Mode`), as inherent
//! methods of `Aws` so that they do not depend on the shape of the `Cloud` trait. As on
//! GCE and OCI: this instance and its ENI from IMDS (the ENI whose MAC is the nic's, never
//! just the first); everything that would make the start fail checked before the first
//! change; the change decided from reads (`plan.rs`, shared with the dry run) and made in
//! read-modify-write rounds (`cloud::settle`: throttling, 5xx and conflicts retried inside
//! the deadline, permission and configuration errors at once); the VIP reported held only
//! on the cloud's evidence: IMDS shows the remap (the AssignPrivateIpAddresses reference:
//! "check network/interfaces/macs/mac/local-ipv4s in the instance metadata to confirm that
//! the remapping is complete"), or a route-table read shows our ENI. EC2 is eventually
//! consistent ("the result of an API command you run that affects your Amazon EC2
//! resources might not be immediately visible to all subsequent commands", research
//! §A2.7): a `*.NotFound` is read again before it is believed, and a read that disagrees
//! with IMDS is repeated until they agree or the deadline comes.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::client::{Ec2, Endpoint};
use super::config::{Config, Mode, Own, SharedValues};
use super::credentials::{AssumeRole, Provider, Source};
use super::imds::{Imds, ImdsEni};
use super::plan::{holder, Change};
use super::query::{self, Eip};
use crate::cloud::{in_subnet, settle, Claimed, Cloud, CloudError, Nic, Op, Planned, Setup};
use crate::deadline::{Backoff, Deadline};
use crate::http::{Http, HttpConfig};
use crate::ocf::Exit;

/// The first exchange of a release (IMDS) must answer within this; the rest of stop's
/// budget goes to the API (as GCE's `RELEASE_PROBE`).
const RELEASE_PROBE: Duration = Duration::from_secs(2);

/// After its own release, how long this node distrusts a read that shows the VIP still
/// ours (EC2's and IMDS's lag is seconds; research §A2.7).
const RELEASE_DISTRUST: Duration = Duration::from_secs(120);

/// A `*.NotFound` is read again after this: EC2 may not show yet what was just made.
const NOT_FOUND_REREAD: Duration = Duration::from_secs(1);

/// Polling a Describe* until it shows a change: API quota, so less often.
const API_POLL: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(2), false);

/// Who has the VIP, as the cloud shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Here,
    /// The cloud positively shows it is not ours: who has it (or "nobody"), and where
    /// that was read.
    NotHere(String),
    /// No evidence either way (route tables are not in IMDS; EC2 and IMDS disagree until
    /// the deadline).
    Unknown(String),
}

/// This instance's ENI of the nic, from IMDS.
pub(super) struct Me {
    pub eni: ImdsEni,
}

impl Me {
    /// The ENI's primary private IP (IMDS lists it first).
    pub fn primary(&self) -> Result<Ipv4Addr, CloudError> {
        self.eni.local_ipv4s.first().copied().ok_or_else(|| {
            CloudError::Transient(format!("IMDS lists no address on {}", self.eni.eni_id))
        })
    }
}

pub struct Aws {
    pub(super) cfg: Config,
    pub(super) ec2: Ec2,
    /// This instance's id, once the identity document was read.
    pub(super) instance: Option<String>,
    pub(super) me: Option<Me>,
    validated: bool,
    /// The state directory (credential caches, the release mark).
    state: Option<std::path::PathBuf>,
    /// This node released the VIP moments ago: reads that show it ours may lag.
    pub(super) just_released: bool,
}

/// `f`, and once more after a pause when it says `NotFound`: right after a change EC2
/// may not show an object yet (research §A2.7 (2)). The second answer is final.
pub(super) fn reread_not_found<T>(
    deadline: &Deadline,
    mut f: impl FnMut() -> Result<T, CloudError>,
) -> Result<T, CloudError> {
    match f() {
        Err(e) if matches!(e.kind(), CloudError::NotFound(_)) => {
            log::info!("{e}; reading again (EC2 is eventually consistent)");
            if deadline.sleep(NOT_FOUND_REREAD).is_err() {
                return Err(e);
            }
            f()
        }
        r => r,
    }
}

/// A write's `*.NotFound` inside a claim round: what it names was read a moment ago, so
/// this is EC2's lag (or a change meanwhile); the round is read and made again.
fn after_write(e: CloudError) -> CloudError {
    if !matches!(e.kind(), CloudError::NotFound(_)) {
        return e;
    }
    let code = e.code().map(str::to_owned);
    let t = CloudError::Transient(format!("{} (read again)", e.into_kind()));
    match code {
        Some(c) => CloudError::coded(c, t),
        None => t,
    }
}

/// Polls `f` until it says true; `Ok(false)` when the deadline came first.
fn poll(
    mut backoff: Backoff,
    deadline: &Deadline,
    mut f: impl FnMut() -> Result<bool, CloudError>,
) -> Result<bool, CloudError> {
    loop {
        if f()? {
            return Ok(true);
        }
        if backoff.wait(deadline).is_err() {
            return Ok(false);
        }
    }
}

/// `10.0.1.0/24` as network and prefix length.
fn cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (net, len) = s.trim().split_once('/')?;
    let len: u8 = len.parse().ok()?;
    (len <= 32).then_some(())?;
    Some((net.parse().ok()?, len))
}

impl Aws {
    /// Clients only: nothing is sent before an action asks. `state` is the state directory
    /// (temporary credentials are cached there, 0600). Keys: the credentials file, else
    /// the environment's `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else the instance
    /// profile.
    pub fn new(cfg: Config, http: &HttpConfig, state: Option<&Path>) -> anyhow::Result<Aws> {
        Ok(Aws::with_http(cfg, Http::new(http)?, state))
    }

    /// The backend of the agent's action: its parameters from `Setup`, its one HTTP
    /// client. A combination that makes no sense is the configuration's error.
    pub fn from_setup(s: &Setup) -> Result<Aws, Exit> {
        let own = s.config::<Own>()?;
        let mode = Mode::from_name(s.mode)
            .ok_or_else(|| Exit::generic(format!("internal error: no AWS mode {}", s.mode)))?;
        let shared = SharedValues {
            public_ip: s.shared.public_ip.clone(),
            credentials: s.shared.credentials.clone(),
            api_endpoint: s.shared.api_endpoint.clone(),
            metadata_url: s.shared.metadata_url.clone(),
        };
        let cfg = Config::new(s.ip, mode, own, &shared).map_err(Exit::configured)?;
        Ok(Aws::with_http(cfg, s.http()?, s.state))
    }

    fn with_http(cfg: Config, http: Http, state: Option<&Path>) -> Aws {
        let source = match &cfg.credentials {
            Some(path) => Source::File {
                path: path.clone(),
                profile: cfg.profile.clone(),
            },
            None => Source::from_env(|k| std::env::var(k).ok()).unwrap_or(Source::Instance),
        };
        let route_creds = cfg.routing_table_role.as_ref().map(|arn| {
            let mut role = AssumeRole::new(arn);
            role.external_id = cfg.external_id.clone();
            Provider::new(source.clone(), Some(role)).with_cache(state)
        });
        let region = cfg.region.clone().unwrap_or_default();
        let ec2 = Ec2 {
            http,
            imds: Imds::new(cfg.metadata_url.as_deref()),
            creds: Provider::new(source, None).with_cache(state),
            route_creds,
            ec2: Endpoint::ec2(&region, cfg.api_endpoint.as_deref()),
            sts: Endpoint::sts(&region, cfg.sts_endpoint.as_deref()),
        };
        Aws {
            cfg,
            ec2,
            instance: None,
            me: None,
            validated: false,
            state: state.map(Path::to_owned),
            just_released: false,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The identity document, once: the instance id, and the region the endpoints are
    /// for unless `aws_region` says otherwise.
    pub(super) fn load_identity(&mut self, deadline: &Deadline) -> Result<String, CloudError> {
        if let Some(i) = &self.instance {
            return Ok(i.clone());
        }
        let id = self.ec2.imds.identity(&self.ec2.http, deadline)?;
        if self.cfg.region.is_none() {
            self.ec2.ec2 = Endpoint::ec2(&id.region, self.cfg.api_endpoint.as_deref());
            self.ec2.sts = Endpoint::sts(&id.region, self.cfg.sts_endpoint.as_deref());
        }
        self.instance = Some(id.instance_id.clone());
        Ok(id.instance_id)
    }

    /// This instance and the ENI of `nic` (by its MAC).
    pub(super) fn load(&mut self, nic: &Nic, deadline: &Deadline) -> Result<(), CloudError> {
        self.load_identity(deadline)?;
        let mac = nic
            .mac
            .map(|m| crate::cloud::format_mac(&m))
            .ok_or_else(|| CloudError::Local(format!("{} has no MAC address", nic.name)))?;
        if self.me.as_ref().is_some_and(|m| m.eni.mac == mac) {
            return Ok(());
        }
        let eni = self
            .ec2
            .imds
            .eni(&self.ec2.http, &mac, deadline)
            .map_err(|e| match e {
                // IMDS's own answer (not EC2's): no code to keep.
                CloudError::NotFound(m) => CloudError::NotFound(format!("{m} ({})", nic.name)),
                e => e,
            })?;
        self.me = Some(Me { eni });
        Ok(())
    }

    pub(super) fn me(&self) -> Result<&Me, CloudError> {
        self.me
            .as_ref()
            .ok_or_else(|| CloudError::Transient("the ENI was not read from IMDS".into()))
    }

    /// An IMDS value under our ENI's `network/interfaces/macs/<mac>/`.
    fn eni_metadata(&mut self, name: &str, deadline: &Deadline) -> Result<String, CloudError> {
        let mac = self.me()?.eni.mac.clone();
        let path = format!("meta-data/network/interfaces/macs/{mac}/{name}");
        self.ec2.imds.need(&self.ec2.http, &path, deadline)
    }

    /// Everything that can be checked before the first change, read-only: the VIP is not
    /// our ENI's primary address; secondary_ip: it lies in our subnet and is not one of the
    /// five addresses AWS reserves in every subnet (network, router, DNS, future use,
    /// broadcast; EC2 UG "Subnet CIDR blocks"); route: it lies outside every CIDR of the
    /// VPC (an overlay IP, as aws-vpc-move-ip requires) and our ENI forwards traffic not
    /// addressed to its own IPs (source/destination check off, research §A2.6) — a node
    /// setting, so another node may do better (`Local`).
    pub fn validate(&mut self, nic: &Nic, deadline: &Deadline) -> Result<(), CloudError> {
        self.load(nic, deadline)?;
        let ip = self.cfg.ip;
        let (eni, primary) = {
            let me = self.me()?;
            (me.eni.eni_id.clone(), me.primary()?)
        };
        // In eip mode `ip` is the Elastic IP, associated with the primary address.
        if primary == ip && self.cfg.mode != Mode::ElasticIp {
            return Err(CloudError::Invalid(format!(
                "ip={ip} is the primary private IP of this node's {eni}: a VIP must be an \
                 address no ENI has as its own"
            )));
        }
        match self.cfg.mode {
            Mode::SecondaryIp => {
                let text = self.eni_metadata("subnet-ipv4-cidr-block", deadline)?;
                let (net, len) = cidr(&text).ok_or_else(|| {
                    CloudError::Transient(format!("IMDS: unreadable subnet CIDR {text:?}"))
                })?;
                if !in_subnet(ip.into(), net.into(), len) {
                    return Err(CloudError::Invalid(format!(
                        "ip={ip} is outside this ENI's subnet {net}/{len}: a secondary private IP \
                         comes from the subnet (mode=route moves an address outside the VPC)"
                    )));
                }
                let host =
                    u32::from(ip) & !(u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0));
                let last = !(u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0));
                if host <= 3 || host == last {
                    return Err(CloudError::Invalid(format!(
                        "ip={ip} is one of the addresses AWS reserves in subnet {net}/{len}"
                    )));
                }
            }
            Mode::Route => {
                let text = self.eni_metadata("vpc-ipv4-cidr-blocks", deadline)?;
                for block in super::imds::lines(&text) {
                    let (net, len) = cidr(block).ok_or_else(|| {
                        CloudError::Transient(format!("IMDS: unreadable VPC CIDR {block:?}"))
                    })?;
                    if in_subnet(ip.into(), net.into(), len) {
                        return Err(CloudError::Invalid(format!(
                            "ip={ip} is inside the VPC's {block}: an overlay IP must be outside \
                             the VPC (mode=secondary_ip moves an address of the subnet)"
                        )));
                    }
                }
                let q = query::describe_network_interfaces(&[&eni]);
                let enis = reread_not_found(deadline, || {
                    self.ec2.describe_network_interfaces(&q, deadline)
                })?;
                let me = enis.iter().find(|e| e.id == eni).ok_or_else(|| {
                    CloudError::Transient(format!(
                        "ec2:DescribeNetworkInterfaces: no {eni} in the answer"
                    ))
                })?;
                if me.source_dest_check {
                    return Err(CloudError::Local(format!(
                        "source/destination check is on for {eni}: it drops the overlay IP's \
                         traffic (aws ec2 modify-network-interface-attribute \
                         --network-interface-id {eni} --no-source-dest-check)"
                    )));
                }
            }
            Mode::ElasticIp => {}
        }
        self.validated = true;
        Ok(())
    }

    /// Who has the VIP. Depth 0 costs no API quota: IMDS `local-ipv4s` (secondary_ip) and
    /// `ipv4-associations/<public_ip>` (eip, and the Elastic IP of secondary_ip); route
    /// tables are not in IMDS, so route mode has no evidence there (`Unknown`). Depth 10
    /// asks EC2 (DescribeNetworkInterfaces, DescribeAddresses, DescribeRouteTables); when
    /// EC2 says "not here" and IMDS "here", EC2 is read again until they agree (its reads
    /// lag), else `Unknown` by the deadline.
    pub fn locate(
        &mut self,
        nic: &Nic,
        depth: u32,
        deadline: &Deadline,
    ) -> Result<Seen, CloudError> {
        self.load(nic, deadline)?;
        let free = self.locate_in_imds(deadline)?;
        if depth < 10 {
            return Ok(free);
        }
        let mut seen = self.locate_in_api(deadline)?;
        if free == Seen::Here && seen != Seen::Here {
            // Read again after a pause, not at once: the lag it waits out is EC2's.
            let mut backoff = API_POLL;
            let again = backoff.wait(deadline).is_ok()
                && poll(backoff, deadline, || {
                    seen = self.locate_in_api(deadline)?;
                    Ok(seen == Seen::Here)
                })?;
            if !again {
                return Ok(Seen::Unknown(format!(
                    "IMDS shows {} here, EC2 does not ({seen:?})",
                    self.cfg.ip
                )));
            }
        }
        Ok(seen)
    }

    fn locate_in_imds(&mut self, deadline: &Deadline) -> Result<Seen, CloudError> {
        let ip = self.cfg.ip;
        let (eni, mac, primary) = {
            let me = self.me()?;
            (me.eni.eni_id.clone(), me.eni.mac.clone(), me.primary()?)
        };
        let http = &self.ec2.http;
        let eip_on = |imds: &mut Imds, public: Ipv4Addr, target: Ipv4Addr| {
            imds.eip_target(http, &mac, public, deadline)
                .map(|t| t == Some(target))
        };
        Ok(match self.cfg.mode {
            Mode::Route => Seen::Unknown("route tables are not in the instance metadata".into()),
            Mode::SecondaryIp => {
                if !self
                    .ec2
                    .imds
                    .local_ipv4s(http, &mac, deadline)?
                    .contains(&ip)
                {
                    Seen::NotHere(format!("IMDS lists no {ip} on {eni}"))
                } else if let Some(e) = &self.cfg.eip {
                    if eip_on(&mut self.ec2.imds, e.public_ip, ip)? {
                        Seen::Here
                    } else {
                        Seen::NotHere(format!("IMDS maps no Elastic IP {} to {ip}", e.public_ip))
                    }
                } else {
                    Seen::Here
                }
            }
            Mode::ElasticIp => match &self.cfg.eip {
                Some(e) if eip_on(&mut self.ec2.imds, e.public_ip, primary)? => Seen::Here,
                Some(e) => Seen::NotHere(format!("IMDS maps {} to nothing of {eni}", e.public_ip)),
                None => Seen::Unknown("no public_ip".into()),
            },
        })
    }

    fn locate_in_api(&mut self, deadline: &Deadline) -> Result<Seen, CloudError> {
        let ip = self.cfg.ip;
        let (eni, subnet, primary) = {
            let me = self.me()?;
            (
                me.eni.eni_id.clone(),
                me.eni.subnet_id.clone(),
                me.primary()?,
            )
        };
        let eip_seen = |a: &super::model::Address, target: Ipv4Addr| {
            if a.held_by(&eni, target) {
                return Seen::Here;
            }
            Seen::NotHere(match &a.association {
                None => format!("Elastic IP {} is associated with nothing", a.public_ip),
                Some(s) => format!(
                    "Elastic IP {} is on {} of {}",
                    a.public_ip,
                    s.private_ip.map_or("?".to_owned(), |p| p.to_string()),
                    holder(s.eni.as_deref(), s.instance_id.as_deref())
                ),
            })
        };
        match self.cfg.mode {
            Mode::SecondaryIp => {
                let holders = self.holders_in(Some(&subnet), deadline)?;
                if !holders.iter().any(|e| e.id == eni) {
                    return Ok(Seen::NotHere(match holders.first() {
                        Some(e) => holder(Some(&e.id), e.instance_id.as_deref()),
                        None => "nobody".into(),
                    }));
                }
                match self.cfg.eip.clone() {
                    Some(want) => Ok(eip_seen(&self.address(&want, deadline)?, ip)),
                    None => Ok(Seen::Here),
                }
            }
            Mode::ElasticIp => match self.cfg.eip.clone() {
                Some(want) => Ok(eip_seen(&self.address(&want, deadline)?, primary)),
                None => Ok(Seen::Unknown("no public_ip".into())),
            },
            Mode::Route => {
                let changes = self.route_changes(deadline)?;
                Ok(match changes.first() {
                    None => Seen::Here,
                    Some(Change::Replace { table, from, .. }) => Seen::NotHere(format!(
                        "{table} routes {} to {from}",
                        self.cfg.destination()
                    )),
                    Some(c) => Seen::Unknown(format!("{c:?}")),
                })
            }
        }
    }

    /// For monitor: does the cloud route the VIP here? Route mode at depth 0 has no free
    /// evidence, so the kernel's word (checked by the caller) stands, as on OCI; any other
    /// lack of evidence is no answer (`Transient`), never "not here".
    pub fn check(
        &mut self,
        nic: &Nic,
        depth: u32,
        deadline: &Deadline,
    ) -> Result<bool, CloudError> {
        match self.locate(nic, depth, deadline)? {
            Seen::Here => Ok(true),
            Seen::NotHere(who) => {
                log::info!("{} is not here: {who}", self.cfg.ip);
                Ok(false)
            }
            Seen::Unknown(_) if depth < 10 && self.cfg.mode == Mode::Route => Ok(true),
            Seen::Unknown(why) => Err(CloudError::Transient(why)),
        }
    }

    /// Make this node's ENI the holder. secondary_ip: assign the VIP (an Elastic IP on it
    /// follows) and wait until IMDS shows it; eip: associate the Elastic IP with our
    /// primary private IP and wait until IMDS maps it; route: replace the /32 in every
    /// table and read the tables until they show our ENI.
    pub fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError> {
        if self.validated {
            self.load(nic, deadline)?;
        } else {
            self.validate(nic, deadline)?;
        }
        self.just_released = self.released_recently();
        match self.cfg.mode {
            Mode::SecondaryIp => settle("claim", deadline, || self.claim_ip_once(deadline))?,
            Mode::ElasticIp => {
                let primary = self.me()?.primary()?;
                settle("claim", deadline, || self.claim_eip_once(primary, deadline))?
            }
            Mode::Route => settle("claim", deadline, || self.claim_routes_once(deadline))?,
        }
        if self.just_released {
            if let Some(m) = self.release_marker() {
                let _ = std::fs::remove_file(m);
            }
        }
        Ok(Claimed::new(None))
    }

    fn claim_ip_once(&mut self, deadline: &Deadline) -> Result<(), CloudError> {
        let ip = self.cfg.ip;
        let (eni, mac) = {
            let me = self.me()?;
            (me.eni.eni_id.clone(), me.eni.mac.clone())
        };
        for c in self.ip_changes(deadline)? {
            if let Change::Assign { from_eni, .. } = &c {
                log::info!(
                    "assigning {ip} to {eni} (from {})",
                    from_eni.as_deref().unwrap_or("nobody")
                );
                self.ec2
                    .assign_private_ips(&eni, &[ip], true, deadline)
                    .map_err(|e| match e.code() {
                        // This ENI is full (its instance type's limit): another node's may
                        // not be, so it is this node's setup, not the configuration.
                        Some(c @ "PrivateIpAddressLimitExceeded") => CloudError::coded(
                            c,
                            CloudError::Local(format!(
                                "{e} ({eni} has as many private IPs as its instance type allows)"
                            )),
                        ),
                        _ => after_write(e),
                    })?;
            }
        }
        if self
            .ec2
            .imds
            .wait_for_ip(&self.ec2.http, &mac, ip, true, deadline)?
        {
            return Ok(());
        }
        Err(CloudError::Transient(format!(
            "IMDS does not show {ip} on {eni} yet (the assignment was accepted)"
        )))
    }

    /// One round of an Elastic IP move to `target` of our ENI.
    fn claim_eip_once(&mut self, target: Ipv4Addr, deadline: &Deadline) -> Result<(), CloudError> {
        let want = self
            .cfg
            .eip
            .clone()
            .ok_or_else(|| CloudError::Invalid("no public_ip to associate".into()))?;
        for c in self.eip_changes(&want, target, None, deadline)? {
            if let Change::Associate {
                allocation,
                eni,
                private_ip,
                from,
                ..
            } = &c
            {
                log::info!(
                    "associating {} with {private_ip} of {eni} (from {})",
                    want.public_ip,
                    from.as_deref().unwrap_or("nobody")
                );
                self.ec2
                    .associate_address(
                        &Eip::Allocation(allocation.clone()),
                        eni,
                        *private_ip,
                        true,
                        deadline,
                    )
                    .map_err(after_write)?;
            }
        }
        let mac = self.me()?.eni.mac.clone();
        let http = &self.ec2.http;
        let imds = &mut self.ec2.imds;
        if poll(super::imds::IMDS_POLL, deadline, || {
            Ok(imds.eip_target(http, &mac, want.public_ip, deadline)? == Some(target))
        })? {
            return Ok(());
        }
        Err(CloudError::Transient(format!(
            "IMDS does not map {} to {target} yet (the association was accepted)",
            want.public_ip
        )))
    }

    fn claim_routes_once(&mut self, deadline: &Deadline) -> Result<(), CloudError> {
        let dest = self.cfg.destination();
        let changes = self.route_changes(deadline)?;
        for c in &changes {
            if let Change::Replace { table, eni, from } = c {
                log::info!("routing {dest} in {table} to {eni} (was {from})");
                self.ec2
                    .put_route(table, &dest, eni, true, deadline)
                    .map_err(after_write)?;
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        // A read at once would show the old route (EC2's reads lag): pause first.
        let mut left = changes;
        let mut backoff = API_POLL;
        if backoff.wait(deadline).is_ok()
            && poll(backoff, deadline, || {
                left = self.route_changes(deadline)?;
                Ok(left.is_empty())
            })?
        {
            return Ok(());
        }
        Err(CloudError::Transient(format!(
            "the route tables do not show {dest} to this node yet: {left:?}"
        )))
    }

    /// After the VIP works here (secondary_ip with public_ip): the Elastic IP, when it did
    /// not follow the assignment.
    pub fn claim_extras(
        &mut self,
        nic: &Nic,
        _proof: &Claimed,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        if self.cfg.mode != Mode::SecondaryIp || self.cfg.eip.is_none() {
            return Ok(());
        }
        self.load(nic, deadline)?;
        let ip = self.cfg.ip;
        settle("public IP", deadline, || self.claim_eip_once(ip, deadline))
    }

    /// Give up what is ours, best effort within `budget` (stop's): IMDS must answer within
    /// `RELEASE_PROBE`. Needs no nic: whatever ENI of this instance holds the VIP.
    pub fn release(&mut self, budget: &Deadline) -> Result<(), CloudError> {
        self.load_identity(&budget.within(RELEASE_PROBE))?;
        let ip = self.cfg.ip;
        let mut first_err = None;
        let changes = self.release_changes(budget)?;
        for c in &changes {
            let r = match &c {
                Change::Disassociate {
                    association,
                    public,
                } => {
                    log::info!("disassociating Elastic IP {public} ({association})");
                    self.ec2.disassociate_address(association, budget)
                }
                Change::Unassign { eni } => {
                    log::info!("unassigning {ip} from {eni}");
                    self.ec2.unassign_private_ips(eni, &[ip], budget)
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                log::warn!("release: {e}");
                first_err.get_or_insert(e);
            }
        }
        // A start here right after this stop (a restart in place) must not take EC2's and
        // IMDS's lagging views for the VIP still being ours and skip its write.
        if first_err.is_none() && !changes.is_empty() {
            if let Some(m) = self.release_marker() {
                if let Err(e) = std::fs::write(&m, b"") {
                    log::warn!("release: cannot write {}: {e}", m.display());
                }
            }
        }
        if self.cfg.mode == Mode::Route {
            log::info!(
                "route mode: the routes for {} stay until the next start elsewhere replaces them",
                self.cfg.destination()
            );
        }
        first_err.map_or(Ok(()), Err)
    }

    /// The mark a release here leaves for a start here soon after (the state directory,
    /// node-local).
    fn release_marker(&self) -> Option<std::path::PathBuf> {
        let d = self.state.as_ref()?;
        Some(d.join(format!("cloudvip-aws-released-{}", self.cfg.ip)))
    }

    /// Did this node give the VIP up within `RELEASE_DISTRUST`? Then a read that shows it
    /// still ours may be EC2's lag (research §A2.7): a start writes anyway (the write is
    /// idempotent: AllowReassignment / AllowReassociation to where it is).
    fn released_recently(&self) -> bool {
        self.release_marker()
            .and_then(|m| std::fs::metadata(m).ok()?.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < RELEASE_DISTRUST)
    }

    /// For `--dry-run`: the same decisions as claim, claim_extras and release, from the
    /// same reads (and the same checks first), with nothing written.
    pub fn plan(
        &mut self,
        op: Op,
        nic: &Nic,
        deadline: &Deadline,
    ) -> Result<Vec<Planned>, CloudError> {
        if op != Op::Release {
            self.just_released = self.released_recently();
        }
        let changes = match op {
            Op::Claim => {
                self.validate(nic, deadline)?;
                match self.cfg.mode {
                    Mode::SecondaryIp => self.ip_changes(deadline)?,
                    Mode::ElasticIp => {
                        let primary = self.me()?.primary()?;
                        let want = self.cfg.eip.clone().ok_or_else(|| {
                            CloudError::Invalid("no public_ip to associate".into())
                        })?;
                        self.eip_changes(&want, primary, None, deadline)?
                    }
                    Mode::Route => self.route_changes(deadline)?,
                }
            }
            Op::Extras => match (self.cfg.mode, self.cfg.eip.clone()) {
                (Mode::SecondaryIp, Some(want)) => {
                    self.load(nic, deadline)?;
                    let moving = self
                        .ip_changes(deadline)?
                        .into_iter()
                        .find_map(|c| match c {
                            Change::Assign { from_eni, .. } => Some(from_eni),
                            _ => None,
                        });
                    match moving {
                        // Assigned from nobody: nothing carries the Elastic IP along.
                        Some(None) => self.eip_changes(&want, self.cfg.ip, Some("-"), deadline)?,
                        Some(Some(from)) => {
                            self.eip_changes(&want, self.cfg.ip, Some(&from), deadline)?
                        }
                        None => self.eip_changes(&want, self.cfg.ip, None, deadline)?,
                    }
                }
                _ => Vec::new(),
            },
            Op::Release => {
                self.load_identity(&deadline.within(RELEASE_PROBE))?;
                self.release_changes(deadline)?
            }
        };
        let mut out: Vec<Planned> = changes.iter().map(|c| self.describe(c)).collect();
        if op == Op::Release && self.cfg.mode == Mode::Route {
            out.push(Planned::note(format!(
                "nothing in the cloud: the routes for {} stay until the next start elsewhere \
                 replaces them",
                self.cfg.destination()
            )));
        }
        Ok(out)
    }
}

/// The agent's side: the inherent methods above, as the seam names them.
impl Cloud for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }

    /// Route mode at depth 0 has no free evidence (route tables are not in IMDS): the
    /// agent trusts the kernel there. Any other lack of evidence is no answer, never
    /// "not here".
    fn locate(
        &mut self,
        nic: &Nic,
        depth: u32,
        deadline: &Deadline,
    ) -> Result<crate::cloud::Seen, CloudError> {
        use crate::cloud::Seen as S;
        Ok(match Aws::locate(self, nic, depth, deadline)? {
            Seen::Here => S::Here,
            Seen::NotHere(who) => S::Elsewhere(Some(who)),
            Seen::Unknown(_) if depth < 10 && self.cfg.mode == Mode::Route => S::NotAsked,
            Seen::Unknown(why) => return Err(CloudError::Transient(why)),
        })
    }

    fn validate(&mut self, nic: &Nic, deadline: &Deadline) -> Result<(), CloudError> {
        Aws::validate(self, nic, deadline)
    }

    fn claim(&mut self, nic: &Nic, deadline: &Deadline) -> Result<Claimed, CloudError> {
        Aws::claim(self, nic, deadline)
    }

    fn complete(
        &mut self,
        nic: &Nic,
        claimed: &Claimed,
        deadline: &Deadline,
    ) -> Result<(), CloudError> {
        self.claim_extras(nic, claimed, deadline)
    }

    fn release(&mut self, deadline: &Deadline) -> Result<(), CloudError> {
        Aws::release(self, deadline)
    }

    fn plan(&mut self, op: Op, nic: &Nic, deadline: &Deadline) -> Result<Vec<Planned>, CloudError> {
        Aws::plan(self, op, nic, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_not_found_is_read_again_once() {
        let d = Deadline::for_timeout(Some(Duration::from_secs(10)));
        let mut n = 0;
        let r = reread_not_found(&d, || {
            n += 1;
            if n == 1 {
                Err(CloudError::NotFound("InvalidRoute.NotFound".into()))
            } else {
                Ok(n)
            }
        });
        assert_eq!(r.unwrap(), 2);
        let mut n = 0;
        let r: Result<(), _> = reread_not_found(&d, || {
            n += 1;
            Err(CloudError::NotFound("gone".into()))
        });
        assert!(matches!(r, Err(CloudError::NotFound(_))) && n == 2);
        assert!(matches!(
            after_write(CloudError::NotFound("x".into())),
            CloudError::Transient(_)
        ));
        assert!(matches!(
            after_write(CloudError::Denied("x".into())),
            CloudError::Denied(_)
        ));
        assert_eq!(cidr("10.0.1.0/24"), Some(("10.0.1.0".parse().unwrap(), 24)));
        assert_eq!(cidr("10.0.1.0/33"), None);
    }
}
