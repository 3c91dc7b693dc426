//! Just enough of the ONNX protobuf to write tiny test models from Rust (field numbers from
//! onnx.proto), so the adapter tests need no Python and no model download.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    #[prost(int64, tag = "1")]
    pub ir_version: i64,
    #[prost(string, tag = "2")]
    pub producer_name: String,
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetId>,
}

#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetId {
    #[prost(string, tag = "1")]
    pub domain: String,
    #[prost(int64, tag = "2")]
    pub version: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfo>,
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfo>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    #[prost(string, tag = "4")]
    pub op_type: String,
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<Attribute>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Attribute {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(int64, tag = "3")]
    pub i: i64,
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// 2 = INT, 7 = INTS.
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// 1 = FLOAT, 7 = INT64.
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    #[prost(string, tag = "8")]
    pub name: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorType>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TensorType {
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<Shape>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Shape {
    #[prost(message, repeated, tag = "1")]
    pub dim: Vec<Dim>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Dim {
    #[prost(int64, optional, tag = "1")]
    pub dim_value: Option<i64>,
    #[prost(string, optional, tag = "2")]
    pub dim_param: Option<String>,
}

/// A float tensor value-info; `None` dims are symbolic ("N").
pub fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorType {
                elem_type: 1,
                shape: Some(Shape {
                    dim: dims
                        .iter()
                        .map(|d| match d {
                            Some(v) => Dim { dim_value: Some(*v), dim_param: None },
                            None => Dim { dim_value: None, dim_param: Some("N".into()) },
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

/// A model whose single output is `mean(image) × weights + bias`, shaped like `bias` with the
/// batch dimension of the input: a fixed, input-dependent output in any layout.
///
/// `input` is `[batch, channels, h, w]` (`None` batch = dynamic); `bias` and `weights` have
/// shape `[1, a, b]` (or `[1, a]`).
pub fn mean_model(
    input: [Option<i64>; 4],
    out_dims: &[i64],
    bias: Vec<f32>,
    weights: Vec<f32>,
) -> Vec<u8> {
    let mut const_dims = vec![1i64];
    const_dims.extend_from_slice(out_dims);
    let mut reshape_to = vec![-1i64];
    reshape_to.extend(out_dims.iter().map(|_| 1));
    let float = |name: &str, data: Vec<f32>| TensorProto {
        dims: const_dims.clone(),
        data_type: 1,
        float_data: data,
        int64_data: vec![],
        name: name.into(),
    };
    let node = |op: &str, inputs: &[&str], output: &str, attribute: Vec<Attribute>| NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        op_type: op.into(),
        attribute,
    };
    let mut output_dims = vec![input[0]];
    output_dims.extend(out_dims.iter().map(|d| Some(*d)));
    let graph = GraphProto {
        name: "tiny".into(),
        node: vec![
            node(
                "ReduceMean",
                &["images"],
                "mean",
                vec![
                    Attribute {
                        name: "axes".into(),
                        ints: vec![1, 2, 3],
                        r#type: 7,
                        ..Default::default()
                    },
                    Attribute { name: "keepdims".into(), i: 1, r#type: 2, ..Default::default() },
                ],
            ),
            node("Reshape", &["mean", "shape"], "m", vec![]),
            node("Mul", &["m", "weights"], "scaled", vec![]),
            node("Add", &["scaled", "bias"], "output0", vec![]),
        ],
        initializer: vec![
            float("bias", bias),
            float("weights", weights),
            TensorProto {
                dims: vec![reshape_to.len() as i64],
                data_type: 7,
                float_data: vec![],
                int64_data: reshape_to,
                name: "shape".into(),
            },
        ],
        input: vec![value_info("images", &input)],
        output: vec![value_info("output0", &output_dims)],
    };
    ModelProto {
        ir_version: 7,
        producer_name: "xueliang-tests".into(),
        graph: Some(graph),
        opset_import: vec![OperatorSetId { domain: String::new(), version: 13 }],
    }
    .encode_to_vec()
}
