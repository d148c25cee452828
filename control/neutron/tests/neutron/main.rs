//! The Neutron service's integration tests, one binary (it links once
//! instead of four times): the API in process against a real SQLite file
//! ([`api`]), a `neutron-server` killed during writes ([`crash`]), the real
//! python-openstackclient ([`openstack_client`]) and scale ([`scale`]).
#![allow(dead_code)]

mod common;

mod api;
mod attributes;
mod crash;
mod dhcp;
mod etcd;
mod etcd_member;
mod ipv6;
mod openstack_client;
mod paging;
mod quotas;
mod scale;
