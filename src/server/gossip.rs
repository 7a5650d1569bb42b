//! `Gossip.Read`: the members serving this store, from the store's cluster membership (on
//! PostgreSQL every `serve` process on the store, one of them the leader). Clients that
//! discover the cluster through gossip connect to the member their node preference picks (the
//! leader by default).

use tonic::{Request, Response, Status};

use super::mapping;
use super::proto::gossip::{ClusterInfo, EndPoint, MemberInfo, gossip_server, member_info::VNodeState};
use crate::{ALL, ClusterMember, EventStore};

/// The `Gossip` service.
pub(crate) struct GossipService {
    pub(crate) store: EventStore,
}

#[tonic::async_trait]
impl gossip_server::Gossip for GossipService {
    async fn read(&self, _request: Request<()>) -> Result<Response<ClusterInfo>, Status> {
        let members = self.store.cluster_members().await.map_err(|e| mapping::status_of(&e, ALL))?;
        Ok(Response::new(ClusterInfo { members: members.iter().map(member_info).collect() }))
    }
}

fn member_info(member: &ClusterMember) -> MemberInfo {
    MemberInfo {
        instance_id: Some(mapping::proto_uuid(member.id, mapping::UuidForm::String)),
        time_stamp: mapping::ticks_of(member.seen_at),
        state: if member.leader { VNodeState::Leader } else { VNodeState::Follower } as i32,
        is_alive: true,
        http_end_point: Some(EndPoint { address: member.address.clone(), port: u32::from(member.port) }),
    }
}
