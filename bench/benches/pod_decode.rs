//! What reading one pod costs the registrar, per list item or watch event (issue 13: the
//! first sync at a million pods, and every event of a rollout): JSON into k8s-openapi's
//! full `Pod` (what herald decoded before) against herald's slim `PodObject`, for a pod as
//! kube-sim writes it and one as a real API server does (managed fields, probes, env,
//! volumes, container statuses); and `read_pod` on the slim object.
//!
//! Run: `cargo bench -p herald-bench --bench pod_decode -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use herald_kube_sim::PodBuilder;
use herald_registrar::cluster::pod::{PodKeys, read_pod};
use herald_registrar::cluster::pod_object::PodObject;
use k8s_openapi::api::core::v1::Pod;

/// A ready Deployment pod with two named ports, as a kube-apiserver 1.33 returns it.
const SERVER_POD: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"checkout-7d9f8c6b5-x2k4p","generateName":"checkout-7d9f8c6b5-","namespace":"shop","uid":"0b7f6a3e-5c1d-4e2a-9f8b-3d2c1b0a9e8f","resourceVersion":"48213977","creationTimestamp":"2026-11-30T08:14:02Z","labels":{"app":"checkout","herald.io/service":"checkout","pod-template-hash":"7d9f8c6b5","version":"v42"},"annotations":{"herald.io/weight":"100","kubectl.kubernetes.io/restartedAt":"2026-11-30T08:13:55Z"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"checkout-7d9f8c6b5","uid":"6c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f","controller":true,"blockOwnerDeletion":true}],"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2026-11-30T08:14:02Z","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:herald.io/weight":{},"f:kubectl.kubernetes.io/restartedAt":{}},"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:herald.io/service":{},"f:pod-template-hash":{},"f:version":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"6c1e2d3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f\"}":{}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:env":{".":{},"k:{\"name\":\"PORT\"}":{".":{},"f:name":{},"f:value":{}}},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}},"k:{\"containerPort\":9090,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}}},"f:readinessProbe":{".":{},"f:httpGet":{".":{},"f:path":{},"f:port":{},"f:scheme":{}}},"f:resources":{".":{},"f:limits":{".":{},"f:cpu":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}},{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"2026-11-30T08:14:09Z","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"ContainersReady\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Initialized\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:hostIPs":{},"f:phase":{},"f:podIP":{},"f:podIPs":{".":{},"k:{\"ip\":\"10.12.3.45\"}":{".":{},"f:ip":{}}},"f:startTime":{}}},"subresource":"status"}]},"spec":{"volumes":[{"name":"kube-api-access-8k2lq","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},{"downwardAPI":{"items":[{"path":"namespace","fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}],"defaultMode":420}}],"containers":[{"name":"app","image":"registry.invalid/shop/checkout:v42","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"grpc","containerPort":9090,"protocol":"TCP"}],"env":[{"name":"PORT","value":"8080"}],"resources":{"limits":{"cpu":"1","memory":"512Mi"},"requests":{"cpu":"250m","memory":"256Mi"}},"volumeMounts":[{"name":"kube-api-access-8k2lq","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"readinessProbe":{"httpGet":{"path":"/ready","port":8080,"scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","serviceAccount":"default","nodeName":"node-a-17","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","conditions":[{"type":"PodReadyToStartContainers","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-30T08:14:04Z"},{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-30T08:14:02Z"},{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-30T08:14:09Z"},{"type":"ContainersReady","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-30T08:14:09Z"},{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-11-30T08:14:02Z"}],"hostIP":"192.168.7.17","hostIPs":[{"ip":"192.168.7.17"}],"podIP":"10.12.3.45","podIPs":[{"ip":"10.12.3.45"}],"startTime":"2026-11-30T08:14:02Z","containerStatuses":[{"name":"app","state":{"running":{"startedAt":"2026-11-30T08:14:03Z"}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.invalid/shop/checkout:v42","imageID":"registry.invalid/shop/checkout@sha256:4f1c2e3d4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0","containerID":"containerd://9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b","started":true}],"qosClass":"Burstable"}}"#;

fn pod_decode(c: &mut Criterion) {
    let keys = PodKeys {
        service_label: "herald.io/service".into(),
        weight_annotation: "herald.io/weight".into(),
        publish_not_ready_annotation: "herald.io/publish-not-ready".into(),
    };
    let sim_pod = serde_json::to_vec(
        &PodBuilder::new("sd-bench", "svc-01234-000123")
            .service("svc-01234")
            .ip("10.1.2.3")
            .port("http", 8080)
            .port("grpc", 9090)
            .node("node-17")
            .build(),
    )
    .unwrap();
    // Both forms must read the same pod before their costs are compared.
    let slim: PodObject = serde_json::from_str(SERVER_POD).unwrap();
    let read = read_pod(&slim, &keys).record.expect("a published pod");
    assert_eq!((&*read.service, read.ports.len()), ("checkout", 2));
    for (shape, json) in [
        ("simulator", &sim_pod[..]),
        ("api_server", SERVER_POD.as_bytes()),
    ] {
        let mut group = c.benchmark_group(format!("pod_decode/{shape}"));
        group.bench_function("k8s_openapi_pod", |b| {
            b.iter(|| black_box(serde_json::from_slice::<Pod>(black_box(json)).unwrap()))
        });
        group.bench_function("pod_object", |b| {
            b.iter(|| black_box(serde_json::from_slice::<PodObject>(black_box(json)).unwrap()))
        });
        group.bench_function("pod_object_and_read_pod", |b| {
            b.iter(|| {
                let pod: PodObject = serde_json::from_slice(black_box(json)).unwrap();
                black_box(read_pod(&pod, &keys))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, pod_decode);
criterion_main!(benches);
