from energizeos.launch import LaunchDescription, Node


def generate_launch_description():
    return LaunchDescription([
        Node(executable="graph_node.py", name="talker", parameters=[{"rate_hz": 5.0, "rtae_hz": 5.0}], respawn=True),
    ])
