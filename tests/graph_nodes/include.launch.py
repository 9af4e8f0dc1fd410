from energizeos.launch import IncludeLaunchDescription, LaunchDescription


def generate_launch_description():
    return LaunchDescription([IncludeLaunchDescription("graph.launch.py", launch_arguments={"rate_hz": "10.0"})])
