"""Remote monitoring and the fleet: an edge site forwards its records to a remote aggregator.

- ``config``: the edge's ``remote:`` section and the aggregator's server file (pydantic).
- ``zenoh_link``: Zenoh configurations for both ends (TLS, user/password, access control).
- ``acl``: the per-party access-control list the aggregator's router enforces.
- ``protocol``: the JSON messages on ``fleet/<site>/...`` and their strict decoding.
- ``outbox``: the edge's durable, numbered store of records not yet acknowledged.
- ``forwarder`` / ``receiver``: the two pure halves of store-and-forward (go-back-N with acks).
- ``fleet_store``: the aggregator's writes into its database; ``aggregator``: ``energizeos remote serve``.
- ``certs``: a small CA and the certificates for a fleet (``energizeos remote certs``).
- ``requests``: a remote party's alarm requests and the edge's gate on them; ``party``: the sending side
  (``energizeos remote request``).

The edge's own bus never joins the remote router: the ``uplink`` node holds a second Zenoh session
and only ever publishes ``fleet/<site>/batch|status|reply/<party>``. The only thing it takes in is a
granted alarm action, which it hands to the alarm manager's service; no remote party can reach the
PCS or breaker command topics, whatever the access-control list says.
"""
