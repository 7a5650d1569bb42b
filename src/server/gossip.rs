//! `Gossip.Read`: the members serving this store. Clients that discover the cluster through
//! gossip connect to the member their node preference picks (the leader by default).

use tonic::{Request, Response, Status};

use super::mapping;
use super::proto::gossip::{ClusterInfo, EndPoint, MemberInfo, gossip_server, member_info::VNodeState};

/// A member of the cluster as gossip lists it.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) instance_id: uuid::Uuid,
    /// Where clients reach it.
    pub(crate) address: String,
    pub(crate) port: u16,
    pub(crate) leader: bool,
    pub(crate) heartbeat: chrono::DateTime<chrono::Utc>,
}

/// The `Gossip` service of a server that is the only member of its cluster.
pub(crate) struct GossipService {
    pub(crate) this: Member,
}

#[tonic::async_trait]
impl gossip_server::Gossip for GossipService {
    async fn read(&self, _request: Request<()>) -> Result<Response<ClusterInfo>, Status> {
        let mut this = self.this.clone();
        this.heartbeat = chrono::Utc::now();
        Ok(Response::new(ClusterInfo { members: vec![member_info(&this)] }))
    }
}

fn member_info(member: &Member) -> MemberInfo {
    MemberInfo {
        instance_id: Some(mapping::proto_uuid(member.instance_id, mapping::UuidForm::String)),
        time_stamp: mapping::ticks_of(member.heartbeat),
        state: if member.leader { VNodeState::Leader } else { VNodeState::Follower } as i32,
        is_alive: true,
        http_end_point: Some(EndPoint { address: member.address.clone(), port: u32::from(member.port) }),
    }
}
